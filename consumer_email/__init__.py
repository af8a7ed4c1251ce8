"""consumer_email: takes messages off `correos` and delivers them by SMTP or as .eml files."""
