"""Character cards shaped like the ones people download: SillyTavern exports (V2 and V3,
JSON and PNG with tEXt or iTXt chunks), English and Chinese, with greetings,
lorebooks written with SillyTavern's own settings, the V1 copies at the top level and a
World Info file of its own."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from typing import Any

# Real CJK entries run to a thousand characters or more (600-1,550 tokens each by the
# estimate): the text below is repeated to that size.
_VILLAGE = ("村庄坐落在河谷的北岸，石头房子沿着山坡一层层排开。村民以种茶和放羊为生，"
            "每逢集日，山外的商人会带着盐和布匹来换茶叶。村口的老槐树下住着一位盲眼的说书人，"
            "他记得这片土地上发生过的每一场战争。")
_CHURCH = ("教堂建在村庄最高处，钟楼早已倾斜。三十年前的一场大火烧毁了它的屋顶，从那以后，"
           "只有修女玛尔塔还每天清晨敲一次钟。据说教堂的地窖里藏着封印的古书，"
           "但没有人敢在夜里靠近。")
VILLAGE_TEXT = _VILLAGE * 8
CHURCH_TEXT = _CHURCH * 8


def _st_entry(uid: int, keys: list[str], content: str, **ext: Any) -> dict[str, Any]:
    """A character_book entry as SillyTavern exports it (its settings in extensions)."""
    extensions = {
        "position": 1, "exclude_recursion": False, "display_index": uid, "probability": 100,
        "useProbability": True, "depth": 4, "selectiveLogic": 0, "group": "",
        "group_override": False, "group_weight": 100, "prevent_recursion": False,
        "delay_until_recursion": False, "scan_depth": None, "match_whole_words": None,
        "use_group_scoring": False, "case_sensitive": None, "automation_id": "", "role": 0,
        "vectorized": False, "sticky": 0, "cooldown": 0, "delay": 0,
    }
    extensions.update(ext)
    return {"id": uid, "keys": keys, "secondary_keys": [], "comment": keys[0] if keys else "",
            "content": content, "constant": False, "selective": True,
            "insertion_order": 100, "enabled": True, "position": "after_char",
            "use_regex": True, "extensions": extensions}


def chinese_v3() -> dict[str, Any]:
    """艾琳娜, a V3 card in Chinese with a lorebook of long entries and greetings."""
    data = {
        "name": "艾琳娜",
        "description": "{{char}}是一名年轻的旅行者，正在寻找失落的教堂。{{char}}对{{user}}很友好。",
        "personality": "好奇、勇敢、有点鲁莽",
        "scenario": "{{user}}在河谷的集市上遇见了{{char}}。",
        "first_mes": "*{{char}}抬起头，对你笑了笑* 你好，{{user}}！你也是来找教堂的吗？",
        "alternate_greetings": ["{{char}}正在看地图。「{{user}}，你知道去村庄的路吗？」"],
        "mes_example": "<START>\n{{user}}: 你是谁？\n{{char}}: 我是{{char}}，一个旅行者。",
        "creator_notes": "适合中文模型。",
        "system_prompt": "", "post_history_instructions": "",
        "tags": ["奇幻", "冒险"], "creator": "某人", "character_version": "1.0",
        "nickname": "小艾",
        "creator_notes_multilingual": {"en": "Works best with Chinese models."},
        "source": ["https://example.org/cards/ailinna"],
        "group_only_greetings": ["大家好！"],
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "creation_date": 1717000000, "modification_date": 1717000500,
        "extensions": {"talkativeness": "0.5", "fav": False, "world": "河谷",
                       "depth_prompt": {"prompt": "", "depth": 4, "role": "system"}},
        "character_book": {
            "name": "河谷", "scan_depth": 4, "token_budget": 500,
            "recursive_scanning": False, "extensions": {},
            "entries": [
                _st_entry(0, ["村庄"], VILLAGE_TEXT),
                _st_entry(1, ["教堂", "钟楼"], CHURCH_TEXT, group="places"),
                _st_entry(2, ["Marta", "玛尔塔"], "修女{{char}}认识玛尔塔很多年了。",
                          position=4, depth=2, role=1, probability=50),
            ],
        },
    }
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def english_v2() -> dict[str, Any]:
    """Seraphina-like: a V2 card with the V1 copies at the top level, as SillyTavern
    writes them, a character's note and a small lorebook."""
    data = {
        "name": "Seraphina",
        "description": ("{{char}} is a guardian of the Eldoria forest. She protects "
                        "travellers like {{user}} and heals the wounded with her magic."),
        "personality": "caring, protective, wise",
        "scenario": "{{user}} wakes up in {{char}}'s glade after an attack.",
        "first_mes": "*{{char}} kneels beside you* You're safe now, {{user}}. It is {{time}}.",
        "alternate_greetings": ["*{{char}} hums* {{random:Good morning,Good evening}}, "
                                "{{user}}."],
        "mes_example": ("<START>\n{{user}}: Where am I?\n{{char}}: In my glade, safe from "
                        "the {\"shadow\": \"beasts\"}."),
        "creator_notes": "Made for SillyTavern.",
        "system_prompt": "{{original}} Never speak for {{user}}.",
        "post_history_instructions": "Reply in under {{random:80,120}} words. {{lastMessage}}",
        "tags": ["fantasy"], "creator": "someone", "character_version": "2.1",
        "extensions": {"talkativeness": "0.5", "fav": True,
                       "depth_prompt": {"prompt": "{{char}} is always gentle.", "depth": 2,
                                        "role": "system"}},
        "character_book": {
            "name": "Eldoria", "entries": [
                _st_entry(0, ["glade"], "The glade is hidden by {{char}}'s wards.",
                          match_whole_words=True),
                _st_entry(1, ["shadow beasts"], "Shadow beasts fear moonlight.", position=0),
            ],
        },
    }
    v1 = {k: copy.deepcopy(v) for k, v in data.items()
          if k in ("name", "description", "personality", "scenario", "first_mes",
                   "mes_example")}
    return {**v1, "creatorcomment": data["creator_notes"], "avatar": "none", "chat": "x",
            "talkativeness": "0.5", "fav": True, "tags": ["fantasy"],
            "create_date": "2024-5-1 @12h 00m", "spec": "chara_card_v2", "spec_version": "2.0",
            "data": data}


def world_info() -> dict[str, Any]:
    """A SillyTavern World Info file (a lorebook of its own): entries by uid."""
    def entry(uid: int, key: list[str], content: str, **more: Any) -> dict[str, Any]:
        found = {"uid": uid, "key": key, "keysecondary": [], "comment": key[0],
                 "content": content, "constant": False, "vectorized": False,
                 "selective": True, "selectiveLogic": 0, "addMemo": True, "order": 100,
                 "position": 0, "disable": False, "excludeRecursion": False,
                 "preventRecursion": False, "delayUntilRecursion": False, "probability": 100,
                 "useProbability": True, "depth": 4, "group": "", "groupOverride": False,
                 "groupWeight": 100, "scanDepth": None, "caseSensitive": None,
                 "matchWholeWords": None, "useGroupScoring": None, "automationId": "",
                 "role": None, "sticky": 0, "cooldown": 0, "delay": 0, "displayIndex": uid}
        found.update(more)
        return found

    return {"entries": {
        "0": entry(0, ["河谷"], "河谷是一片被群山环绕的土地。", position=1),
        "1": entry(1, ["/ember\\s?war/i"], "The Ember War ended forty years ago.",
                   sticky=2, cooldown=1, automationId="boom"),
        "2": entry(2, ["Ashen Council"], "The Council meets at the {{random:new,full}} moon.",
                   position=4, depth=0, role=2),
    }}


def png_with(card: dict[str, Any], *, chunk: str = "tEXt", keyword: str = "chara",
             compressed: bool = False) -> bytes:
    """A real 1x1 PNG carrying ``card`` (base64 JSON) in a tEXt or an iTXt chunk."""
    payload = base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))

    def make(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    if chunk == "tEXt":
        text = make(b"tEXt", keyword.encode("latin-1") + b"\0" + payload)
    else:
        body = zlib.compress(payload) if compressed else payload
        text = make(b"iTXt", keyword.encode("latin-1") + b"\0"
                    + bytes([1 if compressed else 0, 0]) + b"\0\0" + body)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + make(b"IHDR", header) + text
            + make(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + make(b"IEND", b""))
