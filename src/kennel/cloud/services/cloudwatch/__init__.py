"""CloudWatch metrics: PutMetricData, statistics, metric math and ListMetrics; the cloud's MetricSink."""
