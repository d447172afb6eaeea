"""Live progress of a FineTuneJob: `scrape` parses rank 0's metrics, `poller` pulls them on a
timer, `status` merges them (and the completion summary) into status.progress."""
