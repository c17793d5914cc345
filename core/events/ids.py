"""Event ids and stream names. Ids derive from platform ids, so a second delivery of
the same thing is a no-op; streams group the events that must stay in order."""

from __future__ import annotations

import uuid

GATEWAY_STREAM = "gateway"
"""The stream of gateway connects, resumes and disconnects."""
LOG_STREAM = "personae"
"""The stream of the log's own life (its creation)."""
LOG_CREATED_ID = "log:created"


def conversation_stream(platform: str, channel_id: str) -> str:
    """The stream of one conversation: a channel, a thread or a DM channel."""
    return f"conv:{platform}:{channel_id}"


def conversation_prefix(platform: str) -> str:
    """What every conversation stream of ``platform`` starts with."""
    return f"conv:{platform}:"


PRIVACY_STREAM = "privacy"
"""The stream of erasures and retention runs."""


def forget_event_id(subject: str, requested_id: str) -> str:
    """The id of a SubjectForgotten (``requested_id``: the command's own id)."""
    return f"forget:{subject}:{requested_id}"


def retention_event_id(period: int, *, due_only: bool = False) -> str:
    """The id of the ContentExpired of one cutoff day (``due_only``: of a day's runs
    that only shred deletions fallen due)."""
    return f"retention:due:{period}" if due_only else f"retention:{period}"


def message_scope(platform: str, message_id: str) -> str:
    """What the key scopes of one message's content start with (its text revisions and
    its files): deleting the message shreds them all."""
    return f"msg:{platform}:{message_id}/"


def text_scope(platform: str, message_id: str, revision: str = "0") -> str:
    """The key scope of one revision of a message's text (``0``: as sent; an edit's
    time otherwise): an edit shreds the earlier ones."""
    return f"{message_scope(platform, message_id)}text/{revision}"


def text_scopes(platform: str, message_id: str) -> str:
    """What the key scopes of every revision of a message's text start with."""
    return f"{message_scope(platform, message_id)}text/"


def files_scope(platform: str, message_id: str) -> str:
    """The key scope of a message's files (their names and stored content)."""
    return f"{message_scope(platform, message_id)}files"


def message_event_id(platform: str, message_id: str) -> str:
    """The id of a MessageReceived."""
    return f"msg:{platform}:{message_id}"


def edit_event_id(platform: str, message_id: str, edited_at: str) -> str:
    """The id of a MessageEdited (one per distinct edit)."""
    return f"edit:{platform}:{message_id}:{edited_at}"


def delete_event_id(platform: str, message_id: str) -> str:
    """The id of a MessageDeleted."""
    return f"delete:{platform}:{message_id}"


def reset_event_id(platform: str, channel_id: str, reset_id: str) -> str:
    """The id of a ConversationReset; ``reset_id`` is the command's own id."""
    return f"reset:{platform}:{channel_id}:{reset_id}"


def trigger_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one decision (PersonaTriggered or TriggerRejected) per message and persona."""
    return f"trigger:{platform}:{message_id}:{persona_id}"


def trigger_prefix(platform: str, message_id: str) -> str:
    """What the ids of every decision about one message start with."""
    return f"trigger:{platform}:{message_id}:"


def reply_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one model outcome (ModelReplied or ModelFailed)."""
    return f"reply:{platform}:{message_id}:{persona_id}"


def moderation_event_id(platform: str, message_id: str, persona_id: str, direction: str) -> str:
    """The id of the one moderation decision per reply and direction (``in``, ``out``)."""
    return f"moderation:{platform}:{message_id}:{persona_id}:{direction}"


def reply_prefix(platform: str, message_id: str) -> str:
    """What the ids of every model outcome for one message start with."""
    return f"reply:{platform}:{message_id}:"


def delivered_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one delivery outcome (ReplyDelivered or ReplyFailed)."""
    return f"delivered:{platform}:{message_id}:{persona_id}"


def delivery_prefix(platform: str, message_id: str, persona_id: str) -> str:
    """What the ids of every delivery step of one reply start with (plan, parts, preview)."""
    return f"delivery:{platform}:{message_id}:{persona_id}:"


def delivery_plan_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of a reply's DeliveryPlanned."""
    return delivery_prefix(platform, message_id, persona_id) + "plan"


def delivery_part_event_id(platform: str, message_id: str, persona_id: str, index: int) -> str:
    """The id of the DeliveryPartPosted of part ``index`` (posting it twice records it once)."""
    return delivery_prefix(platform, message_id, persona_id) + f"part:{index}"


def preview_planned_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of a streamed reply's PreviewPlanned."""
    return delivery_prefix(platform, message_id, persona_id) + "preview-planned"


def preview_posted_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of a streamed reply's PreviewPosted."""
    return delivery_prefix(platform, message_id, persona_id) + "preview"
def greeting_event_id(platform: str, greeting_id: str, persona_id: str) -> str:
    """The id of the one PersonaGreeted per opening message (or command) and persona."""
    return f"greeting:{platform}:{greeting_id}:{persona_id}"


GREETING_PREFIX = "greeting:"


def greeting_delivery_id(greeting_id: str) -> str:
    """What a greeting's delivery steps, claims and nonces are keyed by in place of the
    message answered (the reply to that message is another delivery)."""
    return GREETING_PREFIX + greeting_id


def greeting_delivered_event_id(platform: str, greeting_id: str, persona_id: str) -> str:
    """The id of the one GreetingDelivered of a greeting."""
    return f"greeted:{platform}:{greeting_id}:{persona_id}"


def quota_stream(persona_id: str) -> str:
    """The stream of a persona's quota resets."""
    return f"quota:{persona_id}"


def quota_reset_event_id(persona_id: str, scheduled_for: float) -> str:
    """The id of the reset due at ``scheduled_for``: a job run twice records it once."""
    return f"quota-reset:{persona_id}:{int(scheduled_for)}"


def version_stream(persona_id: str) -> str:
    """The stream holding every version of ``persona_id``."""
    return f"persona:{persona_id}"


def version_event_id(persona_id: str, version: str) -> str:
    """The idempotency key of one version: recording it twice writes it once."""
    return f"persona-version:{persona_id}:{version}"


def thread_opened_event_id(platform: str, thread_id: str) -> str:
    """The id of the ThreadOpened event of ``thread_id``."""
    return f"thread:{platform}:{thread_id}"


def seed_event_id(platform: str, thread_id: str, copied_id: str) -> str:
    """The id of a turn copied into a new thread's stream."""
    return f"seed:{platform}:{thread_id}:{copied_id}"


def gateway_event_id() -> str:
    """A fresh id for a gateway life-cycle event (each one happens once)."""
    return f"gateway:{uuid.uuid4()}"


def rerun_stream(platform: str, message_id: str) -> str:
    """The stream holding the reruns of one message's calls."""
    return f"rerun:{platform}:{message_id}"


def rerun_event_id() -> str:
    """A fresh id for a rerun (every rerun is recorded)."""
    return f"rerun:{uuid.uuid4()}"


def blob_stream(sha256: str) -> str:
    """The stream holding the content of the file whose hash is ``sha256``."""
    return f"blob:{sha256}"


def blob_event_id(sha256: str) -> str:
    """The id of an AttachmentStored: the same bytes stored twice are written once."""
    return f"blob:{sha256}"


def tool_prefix(platform: str, message_id: str, persona_id: str) -> str:
    """What the ids of every tool step of one reply start with."""
    return f"tool:{platform}:{message_id}:{persona_id}:"


def tool_called_event_id(platform: str, message_id: str, persona_id: str, step: int,
                         index: int) -> str:
    """The id of the ToolCalled of call ``index`` in model call ``step`` of a reply."""
    return f"{tool_prefix(platform, message_id, persona_id)}{step}:{index}:call"


def tool_result_event_id(platform: str, message_id: str, persona_id: str, step: int,
                         index: int) -> str:
    """The id of the ToolResult answering that call."""
    return f"{tool_prefix(platform, message_id, persona_id)}{step}:{index}:result"
