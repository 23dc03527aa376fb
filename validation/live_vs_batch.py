"""Live against batch on any workspace (a real export, say): `winsignal serve` on a copy is sent a call, an
e-mail and a meeting on each of the first 200 open deals (riskiest first), three times: an hour after the
end of the data, three hours after, then two hours after (late: those sort before what the deals already
have). Every one of those deals' live score, explanation included, must then equal `winsignal score
--json`'s for it. Exits non-zero otherwise.

    python3 validation/live_vs_batch.py target/release/winsignal <workspace> /tmp/live-copy
"""
import datetime, http.client, json, shutil, subprocess, sys, time
BIN, DATA, WS = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(WS, ignore_errors=True); shutil.copytree(DATA, WS)
run = lambda *a: subprocess.run([BIN, "--data", WS, "-q", *a], capture_output=True, text=True, check=True).stdout
token = run("users", "add", "ops", "--role", "admin").strip()
srv = subprocess.Popen([BIN, "--data", WS, "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(srv.stdout.readline().strip().rsplit(":", 1)[1])
def req(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse(); return r.status, json.loads(r.read() or b"null")
try:
    while True:
        try:
            if req("GET", "/readyz")[0] == 200: break
        except OSError: pass
        time.sleep(0.1)
    _, d = req("GET", "/v1/deals"); deals = d["deals"][:200]
    end = datetime.datetime.fromisoformat(deals[0]["as_of"].replace("Z", "+00:00"))
    for rnd in range(3):
        at = (end + datetime.timedelta(hours=[1, 3, 2][rnd])).isoformat().replace("+00:00", "Z")
        items = [{"kind": "activities", "record": {"activity_id": f"lc-{rnd}-{i}-{j}", "type": t, "status": "completed",
                  "opportunity_id": x["opportunity_id"], "account_id": x["account_id"], "occurred_at": at}}
                 for i, x in enumerate(deals) for j, t in enumerate(["email", "call", "meeting"])]
        s, body = req("POST", "/v1/events", {"items": items}); assert s == 200, body
        assert body["accepted"] == len(items) and body["quarantined"] == 0, body
    batch = json.loads(run("score", "--json"))
    by_id = {x["opportunity_id"]: x for x in batch["deals"]}
    touched = 0
    for x in deals:
        s, live = req("GET", f"/v1/deals/{x['opportunity_id']}"); assert s == 200
        assert live["deal"] == by_id[x["opportunity_id"]], x["opportunity_id"]; touched += 1
finally:
    # The server stops whatever happened, a failed check included.
    srv.terminate(); srv.wait()
print(f"{touched} deals given events: live equals batch, explanations included")
