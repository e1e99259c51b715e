"""A throwaway PKI for the integration tests: CAs and leaf certificates (EC P-256) made with
the openssl CLI in a directory the caller owns and removes. Nothing is committed."""

import os
import subprocess


class Pki:
    """CAs and certificates made with the openssl CLI in a temporary directory."""

    def __init__(self, root):
        self.root = root
        self.serial = 1000

    def path(self, name):
        return os.path.join(self.root, name)

    def _run(self, args):
        r = subprocess.run(["openssl"] + args, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr.decode()))

    def _conf(self, name, cn, ext_lines):
        path = self.path(name + ".cnf")
        with open(path, "w") as f:
            f.write("[req]\ndistinguished_name = dn\nprompt = no\n\n[dn]\nCN = %s\n\n[ext]\n%s\n"
                    % (cn, "\n".join(ext_lines)))
        return path

    def ca(self, name, cn):
        conf = self._conf(name, cn, ["basicConstraints = critical,CA:TRUE",
                                     "keyUsage = critical,keyCertSign,cRLSign",
                                     "subjectKeyIdentifier = hash"])
        self._run(["req", "-x509", "-new", "-config", conf, "-extensions", "ext",
                   "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", self.path(name + ".key"), "-out", self.path(name + ".crt"),
                   "-days", "2"])
        return self.path(name + ".crt")

    def leaf(self, name, cn, dns=(), ips=(), ca="ca", self_signed=False):
        """A server+client certificate; returns (cert_path, key_path)."""
        sans = ["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips]
        ext = ["basicConstraints = critical,CA:FALSE",
               "keyUsage = critical,digitalSignature,keyEncipherment",
               "extendedKeyUsage = serverAuth,clientAuth",
               "subjectKeyIdentifier = hash"]
        if sans:
            ext.append("subjectAltName = " + ",".join(sans))
        conf = self._conf(name, cn, ext)
        crt, key = self.path(name + ".crt"), self.path(name + ".key")
        if self_signed:
            self._run(["req", "-x509", "-new", "-config", conf, "-extensions", "ext",
                       "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                       "-keyout", key, "-out", crt, "-days", "2"])
            return crt, key
        csr = self.path(name + ".csr")
        self._run(["req", "-new", "-config", conf, "-newkey", "ec",
                   "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", key, "-out", csr])
        self.serial += 1
        self._run(["x509", "-req", "-in", csr, "-CA", self.path(ca + ".crt"),
                   "-CAkey", self.path(ca + ".key"), "-set_serial", str(self.serial),
                   "-days", "2", "-extfile", conf, "-extensions", "ext", "-out", crt])
        return crt, key
