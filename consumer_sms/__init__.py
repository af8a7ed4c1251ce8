"""consumer_sms: takes messages off `cola_sms` and sends them through the SMS provider."""
