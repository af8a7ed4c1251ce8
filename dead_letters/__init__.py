"""dead_letters: the DLQs of cola_sms, correos and logs, listed, replayed and discarded over HTTP."""
