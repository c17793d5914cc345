"""Taking in attachments: kinds decided by the bytes, the operator's caps applied before
any download, PDFs read in a child process within a deadline, and every refusal said."""

from __future__ import annotations

import base64

from core.config import AttachmentSettings
from core.media.fetch import FetchRefused
from core.media.intake import AttachmentIntake, Offered

from .files import pdf, png


def _files(**contents: bytes):
    fetched: list[str] = []

    async def fetch(item: Offered, max_bytes: int, timeout_s: float) -> bytes:
        fetched.append(item.filename)
        data = contents[item.filename]
        if len(data) > max_bytes:
            raise FetchRefused("over the size cap")
        return data

    return fetch, fetched


def _offer(name: str, data: bytes, media_type: str, **fields) -> Offered:
    return Offered(id=name, filename=name, media_type=media_type, size=len(data),
                   url=f"http://127.0.0.1/cdn/{name}", **fields)


async def test_images_text_and_pdfs_are_prepared_for_storing():
    image, text, document = png(640, 480), b"print('hi')\n", pdf(["Quarterly figures"])
    fetch, _ = _files(**{"a.png": image, "b.py": text, "c.pdf": document})
    taken = await AttachmentIntake(AttachmentSettings()).take([
        _offer("a.png", image, "image/png"), _offer("b.py", text, "text/x-python"),
        _offer("c.pdf", document, "application/pdf")], fetch)
    stored = [t.content for t in taken]
    assert all(s is not None for s in stored)
    assert (stored[0].kind, stored[0].width, stored[0].height) == ("image", 640, 480)
    assert base64.b64decode(stored[0].data) == image
    assert taken[0].attachment.sha256 == stored[0].sha256
    assert (stored[1].kind, stored[1].text) == ("text", "print('hi')\n")
    assert (stored[2].kind, stored[2].pages) == ("pdf", 1)
    assert stored[2].text == "[page 1]\nQuarterly figures"
    assert base64.b64decode(stored[2].data) == document, "the original is kept too"


async def test_caps_refuse_before_any_download():
    big, small = b"x" * 5000, b"y" * 100
    settings = AttachmentSettings(max_file_bytes=4000, max_message_bytes=250, max_files=3)
    fetch, fetched = _files(**{"big.txt": big, "s1.txt": small, "s2.txt": small,
                               "s3.txt": small, "s4.txt": small})
    taken = await AttachmentIntake(settings).take(
        [_offer(n, big if n == "big.txt" else small, "text/plain")
         for n in ("big.txt", "s1.txt", "s2.txt", "s3.txt", "s4.txt")], fetch)
    reasons = {t.attachment.filename: t.attachment.refused for t in taken}
    assert reasons["big.txt"] == "over the cap of 4 KB per file"
    assert reasons["s1.txt"] is None and reasons["s2.txt"] is None
    assert reasons["s3.txt"] == "over the cap of 250 bytes per message"
    assert reasons["s4.txt"] == "over the cap of 250 bytes per message"
    assert fetched == ["s1.txt", "s2.txt"], "refused files are never downloaded"
    many = AttachmentSettings(max_files=1)
    fetch, fetched = _files(**{"s1.txt": small, "s2.txt": small})
    taken = await AttachmentIntake(many).take(
        [_offer("s1.txt", small, "text/plain"), _offer("s2.txt", small, "text/plain")], fetch)
    assert taken[1].attachment.refused == "over the cap of 1 files per message"
    assert fetched == ["s1.txt"]


async def test_a_declared_size_that_lies_still_meets_the_caps():
    settings = AttachmentSettings(max_file_bytes=1000, max_message_bytes=1500)
    liar = b"z" * 900

    async def fetch(item: Offered, max_bytes: int, timeout_s: float) -> bytes:
        return liar

    taken = await AttachmentIntake(settings).take(
        [Offered(id="1", filename="a.txt", media_type="text/plain", size=10, url="u"),
         Offered(id="2", filename="b.txt", media_type="text/plain", size=10, url="u")], fetch)
    assert taken[0].content is not None
    assert taken[1].content is None
    assert taken[1].attachment.refused == "over the cap of 1.5 KB per message"


async def test_files_that_are_not_what_they_claim_are_refused_with_a_reason():
    fake_png, binary = b"GIF? no, text", b"\x00\x01\x02binary"
    zip_file = b"PK\x03\x04"
    fetch, fetched = _files(**{"x.png": fake_png, "y.txt": binary, "z.zip": zip_file,
                               "w.pdf": b"hello"})
    taken = await AttachmentIntake(AttachmentSettings()).take([
        _offer("x.png", fake_png, "image/png"), _offer("y.txt", binary, "text/plain"),
        _offer("z.zip", zip_file, "application/zip"), _offer("w.pdf", b"hello",
                                                             "application/pdf")], fetch)
    assert [t.attachment.refused for t in taken] == [
        "not a PNG, JPEG, GIF or WebP image", "a binary file, not text",
        "unsupported type (application/zip)", "not a PDF"]
    assert all(t.content is None for t in taken)
    assert "z.zip" not in fetched


async def test_a_broken_or_slow_pdf_becomes_a_note_not_a_crash():
    broken = b"%PDF-1.7\n" + b"\xff" * 200
    fetch, _ = _files(**{"broken.pdf": broken})
    (taken,) = await AttachmentIntake(AttachmentSettings()).take(
        [_offer("broken.pdf", broken, "application/pdf")], fetch)
    assert taken.content is not None and taken.content.text == ""
    assert taken.content.note.startswith("the PDF could not be read")
    slow = AttachmentSettings(extract_timeout_s=0.001)
    document = pdf(["slow"])
    fetch, _ = _files(**{"slow.pdf": document})
    (taken,) = await AttachmentIntake(slow).take(
        [_offer("slow.pdf", document, "application/pdf")], fetch)
    assert taken.content.note == "reading the PDF took longer than 0.001 s"


async def test_a_long_text_file_is_kept_up_to_the_cap():
    text = ("word " * 1000).encode()
    fetch, _ = _files(**{"long.txt": text})
    (taken,) = await AttachmentIntake(AttachmentSettings(max_text_chars=1000)).take(
        [_offer("long.txt", text, "text/plain")], fetch)
    assert len(taken.content.text) == 1000 and taken.content.truncated
    assert base64.b64decode(taken.content.data) == text
