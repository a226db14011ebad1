"""Raw log lines as a stream: fields by log format, templates by drain3, counts per time bucket.

A log line is split into named fields by a loghub-style format (:mod:`.formats`), its message
is matched to a template mined online by drain3 (:mod:`.templates`), and the number of lines of
each template per key and time bucket becomes one record whose channels the pipeline scores
(:mod:`.buckets`, :mod:`.source`).
"""
