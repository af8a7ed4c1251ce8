"""Code every Cartero service shares: settings, AMQP, message schemas, metrics, logging, clock.

It takes explicit arguments and never imports a service.
"""
