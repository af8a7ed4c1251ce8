"""`python -m consumer_sms`: consume `cola_sms` until SIGTERM."""

from __future__ import annotations

from cartero_common.amqp import declare_shared_queues
from cartero_common.clock import system_clock
from cartero_common.consumer import ConsumerLoop
from cartero_common.logging import configure_logging
from cartero_common.metrics import serve_metrics
from cartero_common.schemas import QUEUE_LOGS, QUEUE_SMS
from consumer_sms.config import Settings
from consumer_sms.handler import make_handler
from consumer_sms.providers import LogProvider


def main() -> None:
    settings = Settings()
    configure_logging("consumer_sms", settings.log_level)
    serve_metrics(settings.consumer_sms_metrics_port)
    loop = ConsumerLoop(
        url=settings.amqp_url,
        queue=QUEUE_SMS,
        handler=make_handler(LogProvider(), clock=system_clock, timezone=settings.timezone),
        declare=lambda channel: declare_shared_queues(channel, (QUEUE_SMS, QUEUE_LOGS)),
        prefetch=settings.consumer_sms_prefetch,
    )
    loop.install_signal_handlers()
    loop.run()


if __name__ == "__main__":
    main()
