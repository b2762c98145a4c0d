#!/usr/bin/env python3
"""Drive `cosfs serve` with raw HTTP from an independent implementation (Python stdlib only):
our own signer, CRC-64 and XML handling, so the server is not only checked by our Rust client.

usage: raw_http.py PATH_TO_COSFS_BINARY
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""
import base64, hashlib, hmac, http.client, os, re, shutil, subprocess, sys, tempfile, time
import urllib.parse, xml.etree.ElementTree as ET

BUCKET = "raw-1250000000"
SID, SKEY = "AKIDrawhttptest", "rawhttpsecretkey"

# --- independent implementations of the COS wire rules -------------------------------------
def enc(s):  # UrlEncode of docs/COS-NOTES.md: everything but A-Z a-z 0-9 - _ . ~
    return urllib.parse.quote(s, safe="-_.~")

def enc_path(s):
    return urllib.parse.quote(s, safe="-_.~/")

def sign(method, key, params, headers, key_time, secret_key=SKEY, secret_id=SID):
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    p = sorted((enc(k).lower(), enc(v)) for k, v in params)
    h = sorted((enc(k).lower(), enc(v)) for k, v in headers.items())
    http_string = "\n".join([method.lower(), "/" + key, "&".join(f"{k}={v}" for k, v in p),
                             "&".join(f"{k}={v}" for k, v in h), ""])
    sts = "sha1\n%s\n%s\n" % (key_time, hashlib.sha1(http_string.encode()).hexdigest())
    sig = hmac.new(sign_key.encode(), sts.encode(), hashlib.sha1).hexdigest()
    return ("q-sign-algorithm=sha1&q-ak=%s&q-sign-time=%s&q-key-time=%s&q-header-list=%s"
            "&q-url-param-list=%s&q-signature=%s") % (
        secret_id, key_time, key_time, ";".join(k for k, _ in h), ";".join(k for k, _ in p), sig)

CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0xC96C5795D7870F42 if c & 1 else c >> 1
    CRC_TABLE.append(c)

def crc64(data):
    c = 0xFFFFFFFFFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF

def md5_b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()

# --- harness ----------------------------------------------------------------------------
passed, failed = 0, 0

def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   ", name)
    else:
        failed += 1
        print("FAIL ", name, detail)

class Server:
    def __init__(self, binary, root):
        self.proc = subprocess.Popen(
            [binary, "serve", "--root", root, "--listen", "127.0.0.1:0", "--bucket", BUCKET,
             "--secret-id", SID, "--secret-key", SKEY, "--log-level", "warn"],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit("no endpoint printed: %r" % line)
        self.port = int(m.group(1))
        self.host = "127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def request(self, method, key="", params=(), headers=None, body=b"", signed=True,
                key_time=None, secret_key=SKEY, chunked_body=None):
        headers = dict(headers or {})
        headers["Host"] = self.host
        if signed:
            now = int(time.time())
            kt = key_time or "%d;%d" % (now - 60, now + 3600)
            signed_headers = {k: v for k, v in headers.items()
                              if k.lower() in ("host", "content-md5", "content-type", "range")
                              or k.lower().startswith("x-cos-")}
            headers["Authorization"] = sign(method, key, params, signed_headers, kt, secret_key)
        path = "/%s/%s" % (BUCKET, enc_path(key))
        if params:
            path += "?" + "&".join(enc(k) + ("=" + enc(v) if v else "") for k, v in params)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if chunked_body is not None:
            conn.request(method, path, body=chunked_body, headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body if method in ("PUT", "POST") else None,
                         headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

def code_of(body):
    try:
        return ET.fromstring(body.strip()).findtext("Code")
    except ET.ParseError:
        return None

def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1

def main(binary):
    # The Python signer itself must reproduce Tencent's published vector A.
    a = sign("PUT", "exampleobject(腾讯云)", [], {
        "Content-Length": "13", "Content-MD5": "mQ/fVh815F3k6TAUm8m0eg==",
        "Content-Type": "text/plain", "Date": "Thu, 16 May 2019 06:45:51 GMT",
        "Host": "examplebucket-1250000000.cos.ap-beijing.myqcloud.com", "x-cos-acl": "private",
        "x-cos-grant-read": 'uin="100000000011"'}, "1557989151;1557996351",
        "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz", "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q")
    check("python signer matches vector A", a.endswith("3b8851a11a569213c17ba8fa7dcf2abec6935172"))
    check("python crc64 matches check value", crc64(b"123456789") == 11051210869376104954)

    root = tempfile.mkdtemp(prefix="cosfs-raw-")
    srv = Server(binary, root)
    try:
        run(srv)
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)

def run(srv):
    key = "py/a b+c/../子 文件?#.txt"
    body = b"ObjectContent"
    st, _, data = srv.request("GET", "", [("prefix", "")], signed=False)
    check("unsigned request refused 403 AccessDenied", st == 403 and code_of(data) == "AccessDenied", (st, data))

    st, h, _ = srv.request("PUT", key, headers={"Content-MD5": md5_b64(body),
                                                "x-cos-meta-mode": "33188"}, body=body)
    check("signed PUT of an odd key", st == 200, st)
    check("PUT ETag is the body MD5", h.get("etag") == '"%s"' % hashlib.md5(body).hexdigest(), h.get("etag"))
    check("PUT reports CRC-64/XZ", h.get("x-cos-hash-crc64ecma") == str(crc64(body)), h.get("x-cos-hash-crc64ecma"))

    st, _, data = srv.request("PUT", "x", body=b"x", secret_key="wrong")
    check("wrong secret: 403 SignatureDoesNotMatch", st == 403 and code_of(data) == "SignatureDoesNotMatch", data)
    now = int(time.time())
    st, _, data = srv.request("GET", key, key_time="%d;%d" % (now - 7200, now - 3600))
    check("expired signature: AccessDenied 'Request has expired'",
          st == 403 and b"Request has expired" in data, data)
    st, _, data = srv.request("PUT", "y", headers={"Content-MD5": md5_b64(b"other")}, body=b"y")
    check("Content-MD5 mismatch: 400 BadDigest", st == 400 and code_of(data) == "BadDigest", data)

    st, h, data = srv.request("GET", key)
    check("GET returns the bytes and metadata", st == 200 and data == body and h.get("x-cos-meta-mode") == "33188", (st, data))
    st, h, data = srv.request("GET", key, headers={"Range": "bytes=1-3"})
    check("Range: 206 with Content-Range", st == 206 and data == b"bje" and h.get("content-range") == "bytes 1-3/13", (st, h, data))
    st, h, data = srv.request("GET", key, headers={"Range": "bytes=-4"})
    check("suffix Range", st == 206 and data == b"tent", data)
    st, _, data = srv.request("GET", key, headers={"Range": "bytes=13-"})
    check("Range past the end: 416 InvalidRange", st == 416 and code_of(data) == "InvalidRange", (st, data))
    etag = hashlib.md5(body).hexdigest()
    st, _, _ = srv.request("GET", key, headers={"If-Match": '"nope"'})
    check("If-Match mismatch: 412", st == 412)
    st, _, _ = srv.request("GET", key, headers={"If-None-Match": '"%s"' % etag})
    check("If-None-Match hit: 304", st == 304)
    st, h, data = srv.request("HEAD", "no/such")
    check("HEAD of a missing key: 404 without body", st == 404 and data == b"", (st, data))

    for k in ["list/a+b", "list/c d/e", "list/c d/f", "list/子/g", "list/h"]:
        srv.request("PUT", k, body=b"1")
    st, _, data = srv.request("GET", "", [("prefix", "list/"), ("delimiter", "/"),
                                          ("encoding-type", "url"), ("max-keys", "3")])
    doc = ET.fromstring(data)
    keys = [urllib.parse.unquote(e.text) for e in doc.iter("Key")]
    prefixes = [urllib.parse.unquote(e.findtext("Prefix")) for e in doc.iter("CommonPrefixes")]
    # Key-byte order: 'h' (0x68) sorts before '子' (0xE5...).
    check("listing page 1 (url-encoded, delimiter, max-keys 3)",
          keys == ["list/a+b", "list/h"] and prefixes == ["list/c d/"] and doc.findtext("IsTruncated") == "true",
          (keys, prefixes, data))
    marker = urllib.parse.unquote(doc.findtext("NextMarker"))
    st, _, data = srv.request("GET", "", [("prefix", "list/"), ("delimiter", "/"),
                                          ("encoding-type", "url"), ("marker", marker)])
    doc = ET.fromstring(data)
    keys = [urllib.parse.unquote(e.text) for e in doc.iter("Key")]
    prefixes = [urllib.parse.unquote(e.findtext("Prefix")) for e in doc.iter("CommonPrefixes")]
    check("listing page 2 continues after NextMarker",
          marker == "list/h" and keys == [] and prefixes == ["list/子/"]
          and doc.findtext("IsTruncated") == "false", (marker, data))

    xml = b"<Delete><Quiet>false</Quiet><Object><Key>list/h</Key></Object><Object><Key>missing</Key></Object></Delete>"
    st, _, data = srv.request("POST", "", [("delete", "")], body=xml)
    check("DELETE Multiple without Content-MD5: 400 InvalidRequest", st == 400 and code_of(data) == "InvalidRequest", data)
    st, _, data = srv.request("POST", "", [("delete", "")], headers={"Content-MD5": md5_b64(b"x")}, body=xml)
    check("DELETE Multiple with a wrong Content-MD5: 400 InvalidDigest", st == 400 and code_of(data) == "InvalidDigest", data)
    st, _, data = srv.request("POST", "", [("delete", "")], headers={"Content-MD5": md5_b64(xml)}, body=xml)
    deleted = [e.findtext("Key") for e in ET.fromstring(data).iter("Deleted")]
    check("DELETE Multiple deletes (missing keys count as deleted)", st == 200 and deleted == ["list/h", "missing"], data)
    st, _, _ = srv.request("DELETE", "list/h")
    check("DELETE of a missing object: 204", st == 204)

    # Multipart by hand: ETag = MD5 of the part MD5s + '-2'; CRC of the whole object.
    st, _, data = srv.request("POST", "mp/obj", [("uploads", "")])
    upload_id = ET.fromstring(data).findtext("UploadId")
    check("Initiate Multipart Upload", st == 200 and upload_id, data)
    p1, p2 = os.urandom(1 << 20), b"tail bytes"
    etags = []
    for n, p in ((1, p1), (2, p2)):
        st, h, _ = srv.request("PUT", "mp/obj", [("partNumber", str(n)), ("uploadId", upload_id)],
                               headers={"Content-MD5": md5_b64(p)}, body=p)
        etags.append(h.get("etag", "").strip('"'))
    check("Upload Part returns part ETags", etags == [hashlib.md5(p1).hexdigest(), hashlib.md5(p2).hexdigest()], etags)
    bad = "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>\"%s\"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>\"%s\"</ETag></Part></CompleteMultipartUpload>" % (etags[1], etags[0])
    st, _, data = srv.request("POST", "mp/obj", [("uploadId", upload_id)], body=bad.encode())
    check("Complete with unsorted parts: InvalidPartOrder", st == 400 and code_of(data) == "InvalidPartOrder", data)
    good = "<CompleteMultipartUpload>" + "".join(
        "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag></Part>" % (i + 1, e) for i, e in enumerate(etags)) + "</CompleteMultipartUpload>"
    st, h, data = srv.request("POST", "mp/obj", [("uploadId", upload_id)], body=good.encode())
    want = hashlib.md5(bytes.fromhex(etags[0]) + bytes.fromhex(etags[1])).hexdigest() + "-2"
    got = (ET.fromstring(data.strip()).findtext("{*}ETag") or "").strip('"')
    check("Complete: multipart ETag", st == 200 and got == want, (got, want, data))
    check("Complete: CRC-64 of the whole object", h.get("x-cos-hash-crc64ecma") == str(crc64(p1 + p2)))
    st, _, data = srv.request("GET", "mp/obj")
    check("multipart object reads back", data == p1 + p2)

    # Copy onto itself with Replaced metadata.
    src = "%s.cos.ap-guangzhou.myqcloud.com/%s" % (BUCKET, enc_path(key))
    st, _, data = srv.request("PUT", key, headers={"x-cos-copy-source": src, "x-cos-metadata-directive": "Replaced",
                                                   "x-cos-meta-mode": "33261", "Content-Type": "text/x-new"})
    check("Copy onto itself with Replaced", st == 200 and ET.fromstring(data).findtext("ETag") == '"%s"' % etag, data)
    st, h, _ = srv.request("HEAD", key)
    check("Replaced metadata visible", h.get("x-cos-meta-mode") == "33261" and h.get("content-type") == "text/x-new", h)

    # A large chunked PUT is streamed to disk, not held in memory.
    size, chunk = 256 << 20, os.urandom(1 << 20)
    hwm_before = vm_hwm_kib(srv.proc.pid)
    def gen():
        for _ in range(size // len(chunk)):
            yield chunk
    st, h, _ = srv.request("PUT", "big/stream", chunked_body=gen())
    hwm = vm_hwm_kib(srv.proc.pid)
    check("256 MiB chunked PUT accepted", st == 200, st)
    check("server peak memory stays bounded (%d KiB before, %d KiB after)" % (hwm_before, hwm), hwm < 128 * 1024)
    st, _, data = srv.request("GET", "big/stream", headers={"Range": "bytes=%d-%d" % (100 << 20, (101 << 20) - 1)})
    check("ranged read in the middle of the big object", st == 206 and data == chunk, st)

if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    try:
        main(sys.argv[1])
    except Exception as e:  # report and fail rather than crash silently
        failed += 1
        print("FAIL  unexpected exception:", repr(e))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
