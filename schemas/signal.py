"""ConversationSignal: a business event about a whole conversation (topic ``convowatch.signals``).

Signals come from outside the assistant (the shop, the contact-centre platform, the feedback widget) and
are keyed by ``conversation_id``, not ``turn_id``: convowatch joins them with the conversation's chat turns
to report business outcomes (containment, escalation to agents, task completion, first-contact resolution,
handle time, contacts per order) next to the quality metrics.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from schemas.common import SCHEMA_VERSION, EventTime, FiniteFloat, Identifier

SignalKind = Literal[
    "thumbs_up", "thumbs_down", "add_to_cart", "purchase", "agent_handoff", "recontact", "handle_time"
]
#: Kinds that may carry a ``value`` (an amount in the shop's currency; informational).
VALUED_KINDS = frozenset({"add_to_cart", "purchase"})


class ConversationSignal(BaseModel):
    """One conversation-level event. Key: ``conversation_id``.

    ``kind``:

    - ``thumbs_up`` / ``thumbs_down``: the user rated the conversation;
    - ``add_to_cart``, ``purchase``: the conversation led to a cart addition or an order (``purchase``
      requires ``order_id``; both may carry ``value``);
    - ``agent_handoff``: the conversation was handed to a human agent;
    - ``recontact``: the customer came back about the same issue (reported on the original conversation);
    - ``handle_time``: handling time of the contact in seconds (``handle_time_seconds``, required; several
      per conversation add up, e.g. one per agent leg).

    ``event_id`` identifies the signal at its source; fields a kind does not use must be absent.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, str_max_length=1_000_000)

    schema_version: Annotated[StrictInt, Field(ge=1)] = SCHEMA_VERSION
    event_id: Identifier
    conversation_id: Identifier
    ts: EventTime
    kind: SignalKind
    order_id: Identifier | None = None
    handle_time_seconds: Annotated[float, Field(ge=0.0, le=604_800.0)] | None = None
    value: FiniteFloat | None = None

    @model_validator(mode="after")
    def _fields_match_the_kind(self) -> ConversationSignal:
        if self.kind == "purchase" and self.order_id is None:
            raise ValueError("a purchase signal needs order_id")
        if self.kind != "purchase" and self.order_id is not None:
            raise ValueError(f"order_id is only for purchase signals, not {self.kind}")
        if self.kind == "handle_time" and self.handle_time_seconds is None:
            raise ValueError("a handle_time signal needs handle_time_seconds")
        if self.kind != "handle_time" and self.handle_time_seconds is not None:
            raise ValueError(f"handle_time_seconds is only for handle_time signals, not {self.kind}")
        if self.value is not None and self.kind not in VALUED_KINDS:
            raise ValueError(f"value is only for add_to_cart and purchase signals, not {self.kind}")
        return self
