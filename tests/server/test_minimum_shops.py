"""The ServerApp's strategy ends a run clearly (never hangs, never aggregates too few shops) below min-train-nodes."""

from __future__ import annotations

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from demand.model import DemandModel
from server.server_app import FederationFailed, MinimumShopsFedAvg

NODE_UNAVAILABLE = "Error: Node Unavailable - the destination node failed to report a heartbeat"


@pytest.fixture(autouse=True)
def server_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are stamped with the running task's identity, as inside flwr-serverapp."""
    for attr, value in (("_run_id", 7), ("_node_id", 1), ("_task_id", 3)):
        monkeypatch.setattr(TaskIdentity, attr, value)


class Grid:
    """The part of Flower's Grid the strategy asks: which shops are connected."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


def _strategy(minimum: int = 2) -> MinimumShopsFedAvg:
    return MinimumShopsFedAvg(min_train_nodes=minimum, min_evaluate_nodes=minimum, min_available_nodes=minimum,
                              wait_seconds=0.3)


def _reply(node: int, shop: str | None) -> Message:
    ins = Message(RecordDict(), dst_node_id=node, message_type=MessageType.TRAIN)
    if shop is None:
        return Message(Error(code=0, reason=NODE_UNAVAILABLE), reply_to=ins)
    metrics = MetricRecord({"num-examples": 100, "train-loss": 0.3, "epsilon": 1.0, "delta": 1e-5, "sigma": 1.2,
                            "sample-rate": 0.1, "steps": 10, "epsilon-budget": 3.0})
    return Message(RecordDict({"arrays": ArrayRecord(DemandModel().state_dict()), "metrics": metrics,
                               "shop": ConfigRecord({"shop-id": shop})}), reply_to=ins)


def test_too_few_connected_shops_end_the_round_instead_of_waiting_forever() -> None:
    strategy = _strategy()
    arrays = ArrayRecord(DemandModel().state_dict())
    with pytest.raises(FederationFailed, match=r"round 1: only 1 shop\(s\) connected after 0 s, at least 2 are needed"):
        strategy.configure_train(1, arrays, ConfigRecord(), Grid([11]))
    assert list(strategy.configure_evaluate(1, arrays, ConfigRecord(), Grid([11]))) == []
    sent = list(strategy.configure_train(1, arrays, ConfigRecord(), Grid([11, 12, 13])))
    assert sorted(m.metadata.dst_node_id for m in sent) == [11, 12, 13] and strategy.sent[1] == 3


def test_a_round_below_the_minimum_fails_with_the_shops_errors() -> None:
    strategy = _strategy()
    strategy.sent[1] = 3
    with pytest.raises(FederationFailed, match=r"round 1: 1 of 3 shop\(s\) returned an update .*Node Unavailable.*"
                                               r"registry keeps its previous model"):
        strategy.aggregate_train(1, [_reply(11, "S1"), _reply(12, None)])


def test_a_crashed_shop_leaves_a_round_that_still_has_enough() -> None:
    strategy = _strategy()
    arrays, _ = strategy.aggregate_train(1, [_reply(11, "S1"), _reply(12, "S2"), _reply(13, None)])
    assert arrays is not None and set(strategy.train_history[1]) == {"S1", "S2"}
    assert strategy.failures[1] == [NODE_UNAVAILABLE]
