-- The hourly roll-up selects usage rows by age alone.
CREATE INDEX usage_minute_minute ON usage_minute (minute);
CREATE INDEX usage_hour_hour ON usage_hour (hour);
