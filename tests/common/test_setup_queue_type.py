"""`rabbitmq-setup`'s queue type decision (`setup_queue_type.decide`), without a broker: which
combinations of CARTERO_QUEUE_TYPE, CARTERO_PHP_DECLARES, broker version, the probe's answer and
the queues already there it allows, and what it says when it refuses."""

from __future__ import annotations

import pytest

from cartero_common.amqp.setup_queue_type import QueueTypeRefused, decide, php_needs, probe_url


@pytest.mark.parametrize(
    ("version", "probe", "allowed"),
    [
        # The probe, when it ran, is the evidence: it sees the version and rabbitmq.conf alike.
        ((3, 10, 8), False, False),
        ((3, 10, 8), True, True),  # whatever the version says, the broker took the declare
        ((3, 11, 16), False, False),  # relaxed checks not switched on
        ((3, 11, 16), True, True),  # relaxed checks on
        ((3, 12, 14), True, True),
        ((3, 13, 3), False, False),
        ((3, 13, 4), False, False),  # the broker refused: believe it over the version
        ((4, 1, 0), True, True),
        # No AMQP connection for the probe: only the version can tell, and only 3.13.4+ can be trusted.
        ((3, 13, 4), None, True),
        ((4, 1, 0), None, True),
        ((3, 13, 3), None, False),
        ((3, 11, 16), None, False),  # relaxed checks may or may not be on: not allowed blind
        ((3, 10, 8), None, False),
    ],
)
def test_quorum_with_php_declares_follows_the_probe_then_the_version(
    version: tuple[int, ...], probe: bool | None, allowed: bool
) -> None:
    if allowed:
        assert decide("quorum", version, {}, php_declares=True, redeclare_matches=probe).queue_type == "quorum"
    else:
        with pytest.raises(QueueTypeRefused, match="refusing CARTERO_QUEUE_TYPE=quorum"):
            decide("quorum", version, {}, php_declares=True, redeclare_matches=probe)


def test_the_refusal_says_why_and_names_the_versions_that_work() -> None:
    with pytest.raises(QueueTypeRefused) as refused:
        decide("quorum", (3, 10, 8), {}, php_declares=True, redeclare_matches=False)
    text = str(refused.value)
    assert "406" in text and "queue_declare" in text
    assert "3.13.4" in text and "3.11.16" in text
    assert "relaxed_checks_on_redeclaration = true" in text
    assert "CARTERO_PHP_DECLARES=false" in text and "CARTERO_QUEUE_TYPE=classic" in text


def test_what_each_version_needs_is_specific() -> None:
    assert "upgrade to RabbitMQ 3.13.4" in php_needs((3, 10, 8))
    assert php_needs((3, 12, 1)).startswith("set `quorum_queue.property_equivalence")
    assert "vhost default" in php_needs((3, 13, 4))


@pytest.mark.parametrize(("probe", "warned"), [(False, True), (None, True), (True, False)])
def test_without_php_declares_quorum_is_allowed_and_what_it_gives_up_is_said(probe: bool | None, warned: bool) -> None:
    verdict = decide("quorum", (3, 10, 8), {}, php_declares=False, redeclare_matches=probe)
    assert verdict.queue_type == "quorum"
    assert (verdict.warning is not None) == warned
    if verdict.warning:
        assert "406" in verdict.warning and "CARTERO_PHP_DECLARES=false" in verdict.warning


@pytest.mark.parametrize("php_declares", [True, False])
def test_classic_is_allowed_on_any_version(php_declares: bool) -> None:
    verdict = decide("classic", (3, 10, 8), {"cola_sms": "classic"}, php_declares=php_declares, redeclare_matches=None)
    assert (verdict.queue_type, verdict.warning) == ("classic", None)


@pytest.mark.parametrize(
    ("wanted", "existing", "other"),
    [
        ("quorum", {"cola_sms": "classic", "correos": "quorum"}, "classic"),
        ("classic", {"cola_sms.retry.5s": "quorum"}, "quorum"),
    ],
)
def test_a_type_switch_over_existing_queues_is_refused_with_the_migration(
    wanted: str, existing: dict[str, str], other: str
) -> None:
    with pytest.raises(QueueTypeRefused) as refused:
        decide(wanted, (4, 1, 0), existing, php_declares=False, redeclare_matches=True)  # type: ignore[arg-type]
    text = str(refused.value)
    assert f"already has {other} queues" in text and "cannot change" in text
    assert "drain" in text and "delete the queues" in text and f"CARTERO_QUEUE_TYPE={other}" in text
    # Queues of the type asked for are no obstacle.
    same = dict.fromkeys(existing, wanted)
    assert decide(wanted, (4, 1, 0), same, php_declares=False, redeclare_matches=True).queue_type == wanted  # type: ignore[arg-type]


def test_the_probe_connects_to_the_api_host_as_the_administrator() -> None:
    url = probe_url("http://rabbitmq:15672/api", "ad min", "p@ss/word", "cartero-setup-probe-1", 5672)
    assert url == "amqp://ad%20min:p%40ss%2Fword@rabbitmq:5672/cartero-setup-probe-1"
