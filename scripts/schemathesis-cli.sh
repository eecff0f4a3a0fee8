#!/usr/bin/env bash
# Run the Schemathesis CLI (all default phases and checks) against a freshly started virtual
# sandbox: start `python -m harness.sim` on a free loopback port, fetch a bearer token with the
# demo credentials, run `schemathesis run`, stop the sandbox. Extra arguments go to
# `schemathesis run` (e.g. --report junit --seed 1). Exit status is Schemathesis's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ST=.venv/bin/schemathesis

work=$(mktemp -d)
sim_pid=""
cleanup() {
    if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid"
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The token must outlive the whole run: give this sandbox's bearer tokens an hour.
"$PY" -m harness.sim --host 127.0.0.1 --port 0 --seed 0 --token-lifetime 3600 >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 300); do  # at most 15 s for the first stdout line (the URL)
    [[ -s "$work/url" ]] && break
    kill -0 "$sim_pid" 2>/dev/null || { cat "$work/sim.log" >&2; exit 4; }
    sleep 0.05
done
url=$(head -n 1 "$work/url")
[[ "$url" == http://127.0.0.1:* ]] || { echo "the sandbox did not start" >&2; cat "$work/sim.log" >&2; exit 4; }

token=$("$PY" - "$url" <<'PY'
import sys, httpx
answer = httpx.post(
    sys.argv[1] + "/realms/harbor/protocol/openid-connect/token",
    data={"grant_type": "client_credentials", "client_id": "demo-provider", "client_secret": "demo-secret",
          "scope": "service_provider tower_access"},
    timeout=10,
)
answer.raise_for_status()
print(answer.json()["access_token"])
PY
)

echo "schemathesis against $url (sandbox pid $sim_pid)" >&2
start=$(date +%s.%N)
status=0
"$ST" run "$url/openapi.json" --url "$url" -H "Authorization: Bearer $token" "$@" || status=$?
end=$(date +%s.%N)
echo "schemathesis wall time: $(printf '%.1f' "$(echo "$end - $start" | bc)") s, exit $status" >&2
exit "$status"
