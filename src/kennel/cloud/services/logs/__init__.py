"""CloudWatch Logs: log groups, streams and events; the cloud's LogSink."""
