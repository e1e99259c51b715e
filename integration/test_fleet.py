#!/usr/bin/python3
"""Fleet mode end to end (README "Fleet mode"): a real etcd on loopback, three grayproxy
instances sharing one rollout through it, traffic spread over all three.

- For 2,000 user keys the three instances answer with the same version throughout a rollout
  (a disagreement may only last while a new weight propagates, well under a second), every
  answer matches the cohort rule for one of the fleet's weights, and the fleet climbs to
  promoted as one.
- A canary that fails only behind one instance (its canary cluster points at an upstream
  answering 500) still rolls the whole fleet back: the leader judges the summed windows.
- kill -9 of the leader hands leadership over within lease_ttl + one interval (plus polling
  slack), and no instance's weight ever goes down during the healthy rollout.
- Stopping etcd freezes the rollout (weights held, /status and metrics say so, admin writes
  refused) while traffic is still served; restarting it resumes the rollout.
- Admin writes and SIGHUP weight edits on any instance reach every instance.

Intervals are short (rollout interval 1s, lease_ttl 3s) so the file runs in well under three
minutes; every wait is bounded.
"""

import http.client
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from pki import Pki  # noqa: E402

ROUTE = "shop"
LEASE_TTL = 3
INTERVAL = 1.0
KEYS = ["user-%d" % i for i in range(2000)]


def bucket(key, salt=ROUTE):
    return xxhash.xxh3_64_intdigest(key.encode(), seed=xxhash.xxh3_64_intdigest(salt.encode())) % 10000


def post(port, path, body=b"", timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


class Load:
    """Keep-alive clients spread over the proxies, random x-user-id, about `rate` req/s."""

    def __init__(self, ports, rate=240, max_seconds=120, seed=3):
        self.ports = ports
        self.rate = rate
        self.max_seconds = max_seconds
        self.seed = seed
        self.lock = threading.Lock()
        self.by_status = {}
        self.failures = 0
        self._halt = threading.Event()
        self._threads = []

    def start(self):
        self.started = time.monotonic()
        for i in range(len(self.ports) * 2):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._halt.set()
        for t in self._threads:
            t.join(timeout=10)

    def total(self):
        with self.lock:
            return sum(self.by_status.values())

    def _run(self, idx):
        rng = random.Random(self.seed * 100 + idx)
        port = self.ports[idx % len(self.ports)]
        period = len(self.ports) * 2 / float(self.rate)  # per thread
        conn = None
        nxt = time.monotonic()
        deadline = self.started + self.max_seconds
        for _ in range(10 ** 7):
            if self._halt.is_set() or time.monotonic() >= deadline:
                break
            now = time.monotonic()
            if nxt > now and self._halt.wait(nxt - now):
                break
            nxt = max(nxt + period, time.monotonic() - 0.5)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/", headers={"x-user-id": "u%d" % rng.getrandbits(48)})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.by_status[r.status] = self.by_status.get(r.status, 0) + 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.failures += 1
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()


class FleetBase(harness.ProxyTestCase):
    # Set by a subclass: etcd serves clients over https and requires a client certificate
    # signed by pki's "ca"; the proxies get this `tls:` block.
    pki = None

    def etcd_tls(self):
        if self.pki is None:
            return None
        return {"ca_file": self.pki.path("ca.crt"), "cert_file": self.pki.path("client.crt"),
                "key_file": self.pki.path("client.key")}

    # -- etcd ---------------------------------------------------------------------------

    def start_etcd(self):
        if not hasattr(self, "etcd_ports"):
            self.etcd_ports = (harness.free_port(), harness.free_port())
            self.etcd_data = os.path.join(self.tmp, "etcd-data")
        client, peer = self.etcd_ports
        scheme = "https" if self.pki else "http"
        tls_args = []
        if self.pki:
            tls_args = ["--cert-file", self.pki.path("etcd.crt"),
                        "--key-file", self.pki.path("etcd.key"),
                        "--trusted-ca-file", self.pki.path("ca.crt"), "--client-cert-auth"]
        log = os.path.join(self.tmp, "etcd.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["etcd", "--name", "default", "--data-dir", self.etcd_data,
                 "--listen-client-urls", "%s://127.0.0.1:%d" % (scheme, client),
                 "--advertise-client-urls", "%s://127.0.0.1:%d" % (scheme, client),
                 "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
                 "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
                 "--initial-cluster", "default=http://127.0.0.1:%d" % peer] + tls_args,
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self._procs.append(("etcd", proc))
        if log not in self._logs:
            self._logs.append(log)
        self.etcd = proc

        ctx = None
        if self.pki:
            ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
            ctx.load_cert_chain(self.pki.path("client.crt"), self.pki.path("client.key"))

        def ready():
            try:
                req = urllib.request.Request("%s://127.0.0.1:%d/v3/kv/range" % (scheme, client),
                                             data=b'{"key":"AA=="}', method="POST")
                with urllib.request.urlopen(req, timeout=1, context=ctx) as r:
                    return r.status == 200
            except OSError:
                return False
        self.assertTrue(harness.wait_until(ready, timeout=20, interval=0.1),
                        "etcd did not answer (exit %r)" % proc.poll())

    def stop_etcd(self):
        harness.stop_process(self.etcd, timeout=10)

    # -- the fleet ----------------------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.start_etcd()
        _, self.stable_port = self.start_upstream("stable")
        _, self.canary_port = self.start_upstream("canary")
        _, self.bad_port = self.start_upstream("bad-canary", args=["--default-query", "status=500"])
        self.nodes = []
        self.loads = []

    def tearDown(self):
        for load in self.loads:
            load.stop()
        super().tearDown()

    def config(self, i, steps, weight, bad_canary=False, tls="default", canary_name="v2",
               lease_ttl=LEASE_TTL, **rollout):
        listen, admin = self.ports[i]
        policy = {"steps": steps, "interval": "1s", "min_requests": 20, "max_error_rate": 0.05,
                  "failure_limit": 2, "consecutive_successes": 1}
        policy.update(rollout)
        canary = self.bad_port if bad_canary else self.canary_port
        etcd = {"endpoints": ["127.0.0.1:%d" % self.etcd_ports[0]],
                "prefix": "/grayproxy/test", "lease_ttl": "%ds" % lease_ttl}
        tls = self.etcd_tls() if tls == "default" else tls
        if tls:
            etcd["tls"] = tls
        return harness.base_config(
            listen, admin,
            clusters=[{"name": "v1", "endpoints": ["127.0.0.1:%d" % self.stable_port]},
                      {"name": canary_name, "endpoints": ["127.0.0.1:%d" % canary]}],
            routes=[{"name": ROUTE, "stable": "v1", "canary": canary_name,
                     "split": {"weight": weight, "hash_on": {"header": "x-user-id"},
                               "fallback": "random", "expose_version": True},
                     "rollout": policy}],
            state_dir=os.path.join(self.tmp, "state%d" % i),
            fleet={"instance": "node%d" % i, "etcd": etcd})

    def start_node(self, i, cfg):
        path = self.write_config(cfg, name="proxy%d.yaml" % i)
        err_path = os.path.join(self.tmp, "proxy%d.stderr" % i)
        with open(err_path, "ab") as err:
            proc = subprocess.Popen([harness.proxy_bin(), "-c", path], stdout=err, stderr=err,
                                    stdin=subprocess.DEVNULL)
        self._procs.append(("proxy%d" % i, proc))
        self._logs.append(err_path)
        listen, admin = self.ports[i]
        # The admin listener binds after the public one (fleet set-up runs in between):
        # wait for both, or the first admin call can be refused on a slow machine.
        for port in (listen, admin):
            self.assertTrue(harness.wait_port(port, timeout=10, proc=proc),
                            "proxy %d did not start" % i)
        node = {"i": i, "proc": proc, "listen": listen, "admin": admin, "config": path}
        self.nodes.append(node)
        return node

    def start_fleet(self, steps, weight, bad_node=None, lease_ttl=LEASE_TTL, **rollout):
        self.ports = [(harness.free_port(), harness.free_port()) for _ in range(3)]
        for i in range(3):
            self.start_node(i, self.config(i, steps, weight, bad_canary=(i == bad_node),
                                           lease_ttl=lease_ttl, **rollout))
            if i == 0:  # node0 leads: the others join an existing fleet
                self.assertTrue(harness.wait_until(lambda: self.fleet(self.nodes[0]).get("is_leader"),
                                                   timeout=15, interval=0.1),
                                self.fleet(self.nodes[0]))
        self.assertTrue(harness.wait_until(
            lambda: all(len(self.fleet(n).get("members", [])) == 3 for n in self.nodes),
            timeout=15, interval=0.1), [self.fleet(n) for n in self.nodes])
        return self.nodes

    def status(self, node):
        st, js = harness.http_get_json(node["admin"], "/status", timeout=5)
        self.assertEqual(st, 200)
        return js

    def fleet(self, node):
        try:
            return self.status(node).get("fleet", {})
        except OSError:
            return {}

    def rollout(self, node):
        return self.status(node)["routes"][0]["rollout"]

    def weight(self, node):
        return self.status(node)["routes"][0]["weight_percent"]

    def metrics(self, node):
        c = http.client.HTTPConnection("127.0.0.1", node["admin"], timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return harness.parse_metrics(text)

    def metric(self, node, name, **labels):
        for (n, lab), v in self.metrics(node).items():
            if n == name and all(dict(lab).get(k) == val for k, val in labels.items()):
                return v
        return None

    def load(self, nodes, rate=240):
        load = Load([n["listen"] for n in nodes], rate=rate).start()
        self.loads.append(load)
        return load

    def wait_all(self, nodes, pred, timeout, what):
        ok = harness.wait_until(lambda: all(pred(n) for n in nodes), timeout=timeout, interval=0.1)
        self.assertTrue(ok, "%s: %s" % (what, [self.rollout(n) for n in nodes if n["proc"].poll() is None]))

    def proxy_log(self, node):
        return os.path.join(self.tmp, "proxy%d.stderr" % node["i"])


class FleetTest(FleetBase):

    def test_write_waiting_for_etcd_does_not_hold_up_reads(self):
        # etcd stopped (SIGSTOP): connections are accepted, nothing is answered, so an admin
        # write waits for etcd (the client's timeout: lease_ttl / 3 = 2 s here). Reads of
        # that instance (/status, /metrics) are answered meanwhile, not after the write.
        nodes = self.start_fleet(steps=[10, 50, 100], weight=10, min_requests=1000000,
                                 lease_ttl=6)
        os.kill(self.etcd.pid, signal.SIGSTOP)
        done = {}

        def write():
            done["result"] = post(nodes[1]["admin"], "/routes/%s/weight" % ROUTE,
                                  b'{"weight": 20}', timeout=30)
        writer = threading.Thread(target=write, daemon=True)
        try:
            writer.start()
            time.sleep(0.2)  # the write is in the proxy first
            for _ in range(3):
                st, js = harness.http_get_json(nodes[1]["admin"], "/status", timeout=5)
                self.assertEqual(st, 200)
                self.assertIn("fleet", js)
                self.assertIn("grayproxy_fleet_leader",
                              {name for name, _ in self.metrics(nodes[1])})
            self.assertTrue(writer.is_alive(), "reads were answered only after the write: %r"
                            % done.get("result"))
        finally:
            os.kill(self.etcd.pid, signal.SIGCONT)
        writer.join(timeout=30)
        self.assertFalse(writer.is_alive())
        # 200 once etcd answers after SIGCONT, 503 had its silence outlasted the client timeout.
        self.assertIn(done["result"][0], (200, 503), done["result"])
        for n in nodes:
            self.assertIsNone(n["proc"].poll(), "node%d exited" % n["i"])

    def test_fleet_answers_as_one_and_promotes_together(self):
        nodes = self.start_fleet(steps=[10, 25, 50, 75, 100], weight=10, consecutive_successes=2)
        self.load(nodes)
        buckets = {k: bucket(k) for k in KEYS}
        conns = [http.client.HTTPConnection("127.0.0.1", n["listen"], timeout=10) for n in nodes]

        def versions(key):
            out = []
            for c in conns:
                c.request("GET", "/", headers={"x-user-id": key})
                r = c.getresponse()
                r.read()
                out.append(r.getheader("x-gray-version"))
            return out

        def check_batch(keys, batch, before):
            # Every answer is the cohort rule for a weight the fleet had meanwhile.
            after = [self.weight(x) for x in nodes]
            lo, hi = min(before) * 100, max(after) * 100
            for key in keys:
                for v in batch[key]:
                    if buckets[key] < lo:
                        self.assertEqual(v, "canary", (key, buckets[key], before, after))
                    elif buckets[key] >= hi:
                        self.assertEqual(v, "stable", (key, buckets[key], before, after))

        seen_canary = set()  # (node, key): a healthy rollout never takes a key back
        disagreements = samples = 0
        deadline = time.monotonic() + 60
        promoted = False
        passes = 0
        while time.monotonic() < deadline and passes < 20:
            passes += 1
            for n, key in enumerate(KEYS):
                if n % 100 == 0:
                    if n:
                        check_batch(KEYS[n - 100:n], batch, before)
                    before = [self.weight(x) for x in nodes]
                    batch = {}
                vs = versions(key)
                batch[key] = vs
                samples += 1
                for i, v in enumerate(vs):
                    self.assertIn(v, ("stable", "canary"))
                    if v == "canary":
                        seen_canary.add((i, key))
                    else:
                        self.assertNotIn((i, key), seen_canary,
                                         "node%d took %s back to stable" % (i, key))
                if len(set(vs)) > 1:
                    disagreements += 1
                    # Only while a new weight propagates: agreed again within a second.
                    agreed = False
                    for _ in range(10):
                        time.sleep(0.1)
                        if len(set(versions(key))) == 1:
                            agreed = True
                            break
                    self.assertTrue(agreed, "%s: %s still differ after 1s" % (key, vs))
            states = [self.rollout(n)["state"] for n in nodes]
            if all(s == "promoted" for s in states):
                promoted = True
                break
        self.assertTrue(promoted, [self.rollout(n) for n in nodes])
        # A disagreement needs a transition between two of the three requests of one key.
        self.assertLess(disagreements, samples * 0.01, (disagreements, samples))
        # Promoted as one: every key canary on every node, the same judgements everywhere.
        for key in KEYS[:300]:
            self.assertEqual(versions(key), ["canary"] * 3)
        docs = [self.rollout(n) for n in nodes]
        self.assertEqual({d["weight_bp"] for d in docs}, {10000})
        self.assertEqual(len({json.dumps(d["judgements"], sort_keys=True) for d in docs}), 1,
                         [d["judgements"][-1] for d in docs])
        fleets = [self.fleet(n) for n in nodes]
        self.assertEqual({f["leader"] for f in fleets}, {"node0"})
        self.assertEqual([f["is_leader"] for f in fleets], [True, False, False])
        for f in fleets:
            self.assertTrue(f["etcd_reachable"])
            self.assertFalse(f["frozen"])
            self.assertEqual(sorted(m["instance"] for m in f["members"]), ["node0", "node1", "node2"])
            for m in f["members"]:
                self.assertLess(m["last_report_age_ms"], 5000)
        self.assertEqual(self.metric(nodes[0], "grayproxy_fleet_leader"), 1)
        self.assertEqual(self.metric(nodes[1], "grayproxy_fleet_leader"), 0)
        self.assertEqual(self.metric(nodes[2], "grayproxy_fleet_members"), 3)
        # The judgements saw the whole fleet's traffic, not the leader's third of it.
        last = docs[0]["judgements"][-1]
        self.assertGreater(last["canary"]["step_requests"], 0)
        for c in conns:
            c.close()

    def test_failure_behind_one_instance_rolls_back_the_fleet(self):
        # node2's canary answers 500 to everything; node0 (the leader) and node1 see none.
        nodes = self.start_fleet(steps=[20, 50, 100], weight=20, bad_node=2)
        load = self.load(nodes, rate=300)
        self.wait_all(nodes, lambda n: self.rollout(n)["state"] == "rolled_back", 30,
                      "fleet not rolled back")
        for n in nodes:
            self.assertEqual(self.weight(n), 0)
        self.assertEqual(self.fleet(nodes[0])["leader"], "node0")
        # The leader's own canary had no errors: the failure came from node2's report.
        self.assertEqual(self.metric(nodes[0], "grayproxy_requests_total", route=ROUTE,
                                     version="canary", code_class="5xx") or 0, 0)
        self.assertGreater(self.metric(nodes[2], "grayproxy_requests_total", route=ROUTE,
                                       version="canary", code_class="5xx"), 0)
        last = self.rollout(nodes[1])["judgements"][-1]
        self.assertEqual(last["verdict"], "fail")
        self.assertGreater(load.total(), 0)

    def test_leader_killed_hands_over_without_going_back(self):
        nodes = self.start_fleet(steps=[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], weight=10,
                                 min_requests=10)
        self.load(nodes, rate=300)
        survivors = nodes[1:]
        history = {n["i"]: [] for n in nodes}

        def sample(ns):
            for n in ns:
                try:
                    w = self.weight(n)
                except OSError:
                    continue
                history[n["i"]].append(w)
                self.assertGreaterEqual(w, max(history[n["i"]]), "node%d went back" % n["i"])

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.weight(nodes[0]) < 30:
            sample(nodes)
            time.sleep(0.1)
        self.assertGreaterEqual(self.weight(nodes[0]), 30)
        before = max(self.weight(n) for n in survivors)
        os.kill(nodes[0]["proc"].pid, signal.SIGKILL)
        nodes[0]["proc"].wait(timeout=5)
        killed = time.monotonic()
        new_leader = None
        while time.monotonic() - killed < LEASE_TTL + INTERVAL + 10:
            sample(survivors)
            leaders = {self.fleet(n).get("leader") for n in survivors}
            if len(leaders) == 1 and leaders <= {"node1", "node2"}:
                new_leader = leaders.pop()
                break
            time.sleep(0.05)
        handover = time.monotonic() - killed
        sys.stderr.write("\nleader handover after kill -9: %.2fs (bound %.1fs)\n"
                         % (handover, LEASE_TTL + INTERVAL + 1.5))
        self.assertIsNotNone(new_leader, "no new leader")
        # lease_ttl + one interval, plus the polling and report period slack.
        self.assertLess(handover, LEASE_TTL + INTERVAL + 1.5, handover)
        # The new leader continues from the fleet's state, never from an older one.
        self.wait_all(survivors, lambda n: self.weight(n) > before, 20, "no progress after handover")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            sample(survivors)
            if all(self.rollout(n)["state"] == "promoted" for n in survivors):
                break
            time.sleep(0.1)
        for n in survivors:
            self.assertEqual(self.rollout(n)["state"], "promoted")
            self.assertEqual(self.fleet(n)["members"].__len__(), 2)

    def test_etcd_down_freezes_and_resumes(self):
        nodes = self.start_fleet(steps=[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], weight=10,
                                 min_requests=10)
        load = self.load(nodes, rate=300)
        self.wait_all(nodes, lambda n: self.weight(n) >= 30, 30, "no progress")
        self.stop_etcd()
        self.wait_all(nodes, lambda n: self.fleet(n)["frozen"], 10, "not frozen")
        held = [self.weight(n) for n in nodes]
        for n in nodes:
            f = self.fleet(n)
            self.assertFalse(f["etcd_reachable"])
            self.assertIsNotNone(f["frozen_since_ms"])
            self.assertEqual(self.metric(n, "grayproxy_fleet_frozen"), 1)
            self.assertEqual(self.metric(n, "grayproxy_fleet_etcd_up"), 0)
        self.assertGreater(sum(v for (name, lab), v in self.metrics(nodes[1]).items()
                               if name == "grayproxy_fleet_etcd_errors_total"), 0)
        # Frozen: three intervals of traffic and no step, no rollback; requests still served.
        served = load.total()
        time.sleep(3 * INTERVAL + 0.5)
        self.assertEqual([self.weight(n) for n in nodes], held)
        self.assertGreater(load.total(), served + 100)
        st, body = post(nodes[1]["admin"], "/routes/%s/rollout/pause" % ROUTE)
        self.assertEqual(st, 503, body)
        with open(self.proxy_log(nodes[2])) as f:
            self.assertIn("etcd unreachable", f.read())
        self.start_etcd()
        self.wait_all(nodes, lambda n: not self.fleet(n)["frozen"], 15, "still frozen")
        self.wait_all(nodes, lambda n: self.weight(n) > max(held), 20, "did not resume")
        for n in nodes:
            self.assertGreaterEqual(self.weight(n), max(held))

    def test_admin_and_sighup_writes_reach_every_instance(self):
        nodes = self.start_fleet(steps=[10, 50, 100], weight=10, min_requests=1000000)
        st, body = post(nodes[2]["admin"], "/routes/%s/rollout/pause" % ROUTE)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["state"], "paused")
        self.wait_all(nodes, lambda n: self.rollout(n)["state"] == "paused", 3, "pause")
        st, body = post(nodes[1]["admin"], "/routes/%s/weight" % ROUTE, b'{"weight": 33}')
        self.assertEqual(st, 200, body)
        self.wait_all(nodes, lambda n: self.weight(n) == 33, 3, "weight 33")
        # SIGHUP with a new YAML weight on node2 only: the edit goes to etcd, every node takes it.
        cfg = self.config(2, [10, 50, 100], 40, min_requests=1000000)
        self.write_config(cfg, name="proxy2.yaml")
        os.kill(nodes[2]["proc"].pid, signal.SIGHUP)
        self.wait_all(nodes, lambda n: self.weight(n) == 40, 5, "SIGHUP weight 40")
        seqs = {self.fleet(n)["routes"][ROUTE]["seq"] for n in nodes}
        self.assertEqual(len(seqs), 1, seqs)
        # The state file stays as a cache of the fleet's state.
        with open(os.path.join(self.tmp, "state0", "rollout-state.json")) as f:
            cached = json.load(f)["routes"][ROUTE]
        self.assertEqual(cached["weight_bp"], 4000)
        self.assertEqual(cached["fleet_seq"], seqs.pop())
        # A new canary build (another canary cluster) reloaded on node1 only: the fleet's
        # analysis starts again from the first step everywhere, not just on node1.
        cfg = self.config(1, [10, 50, 100], 40, canary_name="v3", min_requests=1000000)
        self.write_config(cfg, name="proxy1.yaml")
        os.kill(nodes[1]["proc"].pid, signal.SIGHUP)
        self.wait_all(nodes, lambda n: (self.rollout(n)["state"], self.weight(n)) ==
                      ("progressing", 10), 5, "restart after a canary change")
        seqs = {self.fleet(n)["routes"][ROUTE]["seq"] for n in nodes}
        self.assertEqual(len(seqs), 1, seqs)
        # Written by node1's reload (the leader may have judged since, so not the last writer).
        for n in (nodes[0], nodes[2]):
            def restarted():
                with open(self.proxy_log(n)) as f:
                    return any('cause="fleet reload" writer=node1' in line and
                               "rollout started at 10%" in line for line in f)
            self.assertTrue(harness.wait_until(restarted, timeout=5), "node%d" % n["i"])


class FleetOverTlsTest(FleetBase):
    """etcd serving clients over https with --client-cert-auth: the fleet forms and works
    through mTLS, and an instance without a client certificate, or trusting another CA,
    cannot reach etcd: it serves with its own weight, frozen, and says why."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki(tempfile.mkdtemp(prefix="gp-fleet-pki-"))
        cls.pki.ca("ca", "grayproxy fleet test CA")
        cls.pki.ca("wrongca", "grayproxy wrong CA")
        cls.pki.leaf("etcd", "etcd.test", dns=["localhost"], ips=["127.0.0.1"])
        cls.pki.leaf("client", "grayproxy-fleet")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki.root, ignore_errors=True)

    def test_fleet_over_mtls_and_refused_clients(self):
        nodes = list(self.start_fleet(steps=[10, 50, 100], weight=10, min_requests=1000000))
        self.assertEqual({self.fleet(n)["leader"] for n in nodes}, {"node0"})
        st, body = post(nodes[1]["admin"], "/routes/%s/weight" % ROUTE, b'{"weight": 33}')
        self.assertEqual(st, 200, body)
        self.wait_all(nodes, lambda n: self.weight(n) == 33, 3, "weight 33")

        # No client certificate (etcd refuses the handshake), or etcd's certificate not
        # trusted (the proxy refuses it): never a member, frozen with its YAML weight.
        refused = [(3, {"ca_file": self.pki.path("ca.crt")}),
                   (4, {"ca_file": self.pki.path("wrongca.crt"),
                        "cert_file": self.pki.path("client.crt"),
                        "key_file": self.pki.path("client.key")})]
        for i, tls in refused:
            self.ports.append((harness.free_port(), harness.free_port()))
            node = self.start_node(i, self.config(i, [10, 50, 100], 5, tls=tls,
                                                  min_requests=1000000))

            def turned_away():  # its first attempt failed, was counted and logged
                errors = sum(v for (name, lab), v in self.metrics(node).items()
                             if name == "grayproxy_fleet_etcd_errors_total")
                with open(self.proxy_log(node)) as log:
                    return errors > 0 and "etcd unreachable" in log.read()
            self.assertTrue(harness.wait_until(turned_away, timeout=15, interval=0.1),
                            self.fleet(node))
            f = self.fleet(node)
            self.assertFalse(f["etcd_reachable"])
            self.assertTrue(f["frozen"])
            self.assertEqual(self.metric(node, "grayproxy_fleet_etcd_up"), 0)
            self.assertEqual(self.weight(node), 5)
            st, _ = harness.http_get_json(node["listen"], "/", headers={"x-user-id": "u1"})
            self.assertEqual(st, 200)
        # The fleet never saw them and kept its state.
        for n in nodes:
            f = self.fleet(n)
            self.assertEqual(sorted(m["instance"] for m in f["members"]),
                             ["node0", "node1", "node2"], (n["i"], f))
            self.assertEqual(self.weight(n), 33)


if __name__ == "__main__":
    unittest.main(verbosity=2)
