<?php
// Publishes one message the way the team's PHP senders do: declare the queue durable with no
// arguments, a bare AMQPMessage (no properties: not persistent, no message_id), default exchange.
// Usage: php php_publish.php HOST PORT USER PASSWORD VHOST QUEUE BODY
require_once '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;

[, $host, $port, $user, $password, $vhost, $queue, $body] = $argv;
$connection = new AMQPStreamConnection($host, (int) $port, $user, $password, $vhost);
$channel = $connection->channel();
$channel->queue_declare($queue, false, true, false, false);
$channel->basic_publish(new AMQPMessage($body), '', $queue);
$channel->close();
$connection->close();
