"""Tallies a schemathesis 4 NDJSON report (tests/schemathesis.sh).

Prints, on stderr, the number of answers of each status, then on stdout one line:
`<test cases passed> <test cases failed>`. A test case failed when any check on any of its
responses failed; a scenario that ended in an error counts as one failed case.
"""

import collections
import json
import sys

passed = failed = 0
answers = collections.Counter()
for line in open(sys.argv[1]):
    event = json.loads(line)
    finished = event.get("ScenarioFinished")
    if finished is None:
        continue
    recorder = finished.get("recorder", {})
    if finished.get("status") == "error" and not recorder.get("cases"):
        failed += 1
    for case_id in recorder.get("cases", {}):
        checks = recorder.get("checks", {}).get(case_id, [])
        if any(check.get("status") == "failure" for check in checks):
            failed += 1
        else:
            passed += 1
    for interaction in recorder.get("interactions", {}).values():
        answers[(interaction.get("response") or {}).get("status_code", "none")] += 1

print("answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(answers.items(), key=str)), file=sys.stderr)
print(passed, failed)
