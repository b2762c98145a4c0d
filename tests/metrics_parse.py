"""Parse a Prometheus exposition (stdin) with the reference parser, prometheus_client's, and
print every sample as JSON: [{"name": ..., "labels": {...}, "value": ...}, ...] plus each
family's type. A text the parser refuses makes it exit non-zero with its error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
types = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.append({"name": s.name, "labels": s.labels, "value": s.value})
json.dump({"types": types, "samples": samples}, sys.stdout)
