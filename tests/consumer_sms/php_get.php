<?php
// Takes one message the way the team's PHP consumer does: declare the queue durable with no
// arguments, basic_get, print the body, ack. Prints nothing if the queue is empty.
// Usage: php php_get.php HOST PORT USER PASSWORD VHOST QUEUE
require_once '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;

[, $host, $port, $user, $password, $vhost, $queue] = $argv;
$connection = new AMQPStreamConnection($host, (int) $port, $user, $password, $vhost);
$channel = $connection->channel();
$channel->queue_declare($queue, false, true, false, false);
$message = $channel->basic_get($queue);
if ($message !== null) {
    echo $message->getBody();
    $channel->basic_ack($message->getDeliveryTag());
}
$channel->close();
$connection->close();
