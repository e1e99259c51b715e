#!/usr/bin/python3
"""Send N requests with distinct x-user-id keys through a proxy (one keep-alive
connection) and report the share that reached the canary upstream (body "canary\n").
With --rule xxh3:SALT or --rule xxh64 it also counts how many keys landed where that
rule says (grayproxy: seed = XXH3_64(salt), XXH3_64(key, seed) % 10000 < weight*100;
haproxy: (xxh64(key, seed 0) & 0x7fff...) % 10000 < 1000, the mask because
haproxy's integers are signed and mod() of a negative value is negative).

usage: split_check.py PORT N [--rule xxh3:SALT|xxh64] [--weight 10]
"""
import argparse
import http.client

try:
    import xxhash
except ImportError:  # the share is still reported
    xxhash = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--rule", default="")
    ap.add_argument("--weight", type=float, default=10)
    a = ap.parse_args()
    limit = int(round(a.weight * 100))

    def expect(key):
        if not xxhash or not a.rule:
            return None
        if a.rule.startswith("xxh3:"):
            seed = xxhash.xxh3_64_intdigest(a.rule[5:].encode())
            return xxhash.xxh3_64_intdigest(key.encode(), seed=seed) % 10000 < limit
        if a.rule == "xxh64":
            # haproxy integers are signed 64-bit: the bench masks the top bit before mod
            return (xxhash.xxh64_intdigest(key.encode(), seed=0) & 0x7FFFFFFFFFFFFFFF) % 10000 < limit
        raise SystemExit("unknown rule " + a.rule)

    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    canary = agree = checked = other = 0
    for i in range(a.n):
        key = "check-%d" % i
        conn.request("GET", "/", headers={"x-user-id": key})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or body not in (b"stable\n", b"canary\n"):
            other += 1
            continue
        is_canary = body == b"canary\n"
        canary += is_canary
        e = expect(key)
        if e is not None:
            checked += 1
            agree += (e == is_canary)
    # the same key twice must land on the same side
    sticky = True
    for i in range(50):
        seen = set()
        for _ in range(3):
            conn.request("GET", "/", headers={"x-user-id": "sticky-%d" % i})
            r = conn.getresponse()
            seen.add(r.read())
        sticky &= len(seen) == 1
    conn.close()
    share = 100.0 * canary / max(1, a.n - other)
    rule = ("rule-agree=%d/%d" % (agree, checked)) if checked else "rule-agree=n/a"
    print("canary=%.1f%% (%d/%d) %s sticky=%s non200=%d" %
          (share, canary, a.n - other, rule, "yes" if sticky else "NO", other))


if __name__ == "__main__":
    main()
