"""A restartable view whose escalations are kept, fed contacts: the worker's clock of the views that close
silent alarms and look for retired judges on it."""

from __future__ import annotations

from typing import Any

from tests.support.restartable import RestartableView


class Escalating(RestartableView):
    """Mixin before a :class:`RestartableView` subclass: what its view emits to ``escalations`` is kept in
    :attr:`escalations` (which the subclass sets before ``super().__init__``), and :meth:`contact` feeds a
    turn's contact."""

    escalations: list[dict[str, Any]]

    def make_view(self, metrics: Any) -> Any:
        view = super().make_view(metrics)
        apply = view.apply

        def keep(aggregator: Any, obs: dict[str, Any], partition: int | None) -> Any:
            emits = apply(aggregator, obs, partition)
            self.escalations.extend(emit.value for emit in emits if emit.topic == "escalations")
            return emits

        view.apply = keep
        return view

    def contact(self, ts: float, journey: str = "creative") -> None:
        """A contact of a conversation of ``journey`` at ``ts``, from the turns' stream."""
        self.offset += 1
        self.aggregator.apply(
            {
                "kind": "contact",
                "conversation_id": f"c{self.offset}",
                "turn_id": f"t{self.offset}",
                "ts": ts,
                "segment": {"journey": journey},
                "outcome": {},
                "src": ["chat_turns:0", self.offset, 0],
            }
        )
