#!/usr/bin/env python3
"""Tencent's own clients as the referee: the documented calls of cos-python-sdk-v5 and coscmd
against `cosfs serve`, and objects passed between them and a cosfs mount of the same bucket.

usage: tencent_sdk.py   (settings in the environment, from tests/tencent_clients.rs)
  COS_PORT, COS_BUCKET, COS_SECRET_ID, COS_SECRET_KEY: the server and its keys
  COS_MOUNT: a cosfs mount of the bucket
The clients use COS's real host names (`<bucket>.cos.ap-guangzhou.myqcloud.com`) through an
HTTP proxy setting that points at the server, so requests are addressed virtual-hosted, as on
COS. Prints one line per check and a closing 'N passed, N failed' line; exits 1 on a failure.
"""
import hashlib, io, json, os, subprocess, sys, tempfile, time, traceback, urllib.request
import urllib.error

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

PORT = int(os.environ["COS_PORT"])
BUCKET = os.environ["COS_BUCKET"]
SID, SKEY = os.environ["COS_SECRET_ID"], os.environ["COS_SECRET_KEY"]
MOUNT = os.environ["COS_MOUNT"]
REGION = "ap-guangzhou"
PROXY = "http://127.0.0.1:%d" % PORT

passed, failed = 0, 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   ", name)
    else:
        failed += 1
        print("FAIL ", name, detail)
    sys.stdout.flush()


def run(name, fn):
    """A check whose exception is its failure."""
    try:
        fn()
    except Exception:
        check(name, False, traceback.format_exc())


client = CosS3Client(CosConfig(Region=REGION, SecretId=SID, SecretKey=SKEY, Scheme="http",
                               Proxies={"http": PROXY, "https": PROXY}), retry=1)


def body_of(resp):
    return resp["Body"].get_raw_stream().read()


def pattern(n, seed):
    out, x = bytearray(), seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def service_error(fn):
    try:
        fn()
    except CosServiceError as e:
        return e
    return None


def set_fault(name, value):
    """Change one fault setting of the server (its admin endpoint, not COS's API)."""
    url = "http://127.0.0.1:%d/-/faults" % PORT
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        cfg = json.load(r)
    cfg[name] = value
    req = urllib.request.Request(url, method="PUT", data=json.dumps(cfg).encode())
    with opener.open(req, timeout=10) as r:
        r.read()


STANDARD = {"CacheControl": "max-age=86400", "ContentEncoding": "gzip",
            "ContentDisposition": 'attachment; filename="s.css"', "ContentLanguage": "zh-CN",
            "Expires": "Wed, 21 Oct 2037 07:28:00 GMT"}
WIRE = {"CacheControl": "Cache-Control", "ContentEncoding": "Content-Encoding",
        "ContentDisposition": "Content-Disposition", "ContentLanguage": "Content-Language",
        "Expires": "Expires"}


def kept_standard(h):
    return all(h.get(WIRE[k]) == v for k, v in STANDARD.items())


# --- the SDK against the server -------------------------------------------------------------
def objects():
    data = b"body of a stylesheet"
    r = client.put_object(Bucket=BUCKET, Key="sdk/style.css", Body=data, ContentType="text/css",
                          Metadata={"x-cos-meta-app": "cdn"}, **STANDARD)
    check("put_object answers ETag", r.get("ETag", "").strip('"') == hashlib.md5(data).hexdigest(), r)
    h = client.head_object(Bucket=BUCKET, Key="sdk/style.css")
    check("head_object: Content-Length, ETag, Last-Modified as COS spells them",
          h.get("Content-Length") == str(len(data)) and "ETag" in h and "Last-Modified" in h, h)
    check("head_object: the standard headers stored", kept_standard(h), h)
    check("head_object: Content-Type and x-cos-meta-app",
          h.get("Content-Type") == "text/css" and h.get("x-cos-meta-app") == "cdn", h)
    g = client.get_object(Bucket=BUCKET, Key="sdk/style.css")
    check("get_object returns the bytes", body_of(g) == data)
    g = client.get_object(Bucket=BUCKET, Key="sdk/style.css", Range="bytes=5-6")
    check("get_object Range", body_of(g) == data[5:7])
    g = client.get_object(Bucket=BUCKET, Key="sdk/style.css",
                          ResponseContentDisposition="inline; filename=a b.css",
                          ResponseCacheControl="no-cache", ResponseContentType="text/plain")
    check("get_object response-* overrides (with a space)",
          g.get("Content-Disposition") == "inline; filename=a b.css"
          and g.get("Cache-Control") == "no-cache" and g.get("Content-Type") == "text/plain", g)
    h = client.head_object(Bucket=BUCKET, Key="sdk/style.css")
    check("overrides leave the object's headers", kept_standard(h), h)
    check("object_exists", client.object_exists(Bucket=BUCKET, Key="sdk/style.css")
          and not client.object_exists(Bucket=BUCKET, Key="sdk/none"))
    e = service_error(lambda: client.get_object(Bucket=BUCKET, Key="sdk/none"))
    check("get_object of a missing key: 404 NoSuchKey",
          e is not None and e.get_status_code() == 404 and e.get_error_code() == "NoSuchKey")


def copies():
    r = client.copy_object(Bucket=BUCKET, Key="sdk/copy.css",
                           CopySource={"Bucket": BUCKET, "Key": "sdk/style.css", "Region": REGION})
    check("copy_object answers ETag", "ETag" in r, r)
    h = client.head_object(Bucket=BUCKET, Key="sdk/copy.css")
    check("copy_object (Copy) keeps the standard headers and metadata",
          kept_standard(h) and h.get("x-cos-meta-app") == "cdn", h)
    client.copy_object(Bucket=BUCKET, Key="sdk/copy.css", CopyStatus="Replaced",
                       CopySource={"Bucket": BUCKET, "Key": "sdk/copy.css", "Region": REGION},
                       ContentType="text/css", CacheControl="no-store")
    h = client.head_object(Bucket=BUCKET, Key="sdk/copy.css")
    check("copy_object (Replaced) replaces the whole header set, as COS does",
          h.get("Cache-Control") == "no-store" and "Content-Encoding" not in h
          and "x-cos-meta-app" not in h, h)
    big = pattern(3 * 1024 * 1024 + 5, 7)
    client.put_object(Bucket=BUCKET, Key="sdk/big-src", Body=big, CacheControl="private")
    client.copy(Bucket=BUCKET, Key="sdk/big-copy", PartSize=1, MAXThread=2,
                CopySource={"Bucket": BUCKET, "Key": "sdk/big-src", "Region": REGION})
    g = client.get_object(Bucket=BUCKET, Key="sdk/big-copy")
    check("copy (multipart, Upload Part - Copy) copies the bytes", body_of(g) == big)


def uploads(tmp):
    for size in (0, 1000, 5 * 1024 * 1024 + 17):
        local = os.path.join(tmp, "up-%d" % size)
        data = pattern(size, size)
        with open(local, "wb") as f:
            f.write(data)
        client.upload_file(Bucket=BUCKET, Key="sdk/up/%d" % size, LocalFilePath=local, PartSize=1,
                           MAXThread=2, EnableMD5=True)
        out = os.path.join(tmp, "down-%d" % size)
        client.download_file(Bucket=BUCKET, Key="sdk/up/%d" % size, DestFilePath=out, PartSize=1,
                             MAXThread=2, EnableCRC=True)
        with open(out, "rb") as f:
            check("upload_file + download_file of %d bytes" % size, f.read() == data)
    buf = pattern(2 * 1024 * 1024 + 3, 3)
    client.upload_file_from_buffer(Bucket=BUCKET, Key="sdk/buffer", Body=io.BytesIO(buf),
                                   PartSize=1, MAXThread=2)
    check("upload_file_from_buffer",
          body_of(client.get_object(Bucket=BUCKET, Key="sdk/buffer")) == buf)


def multipart():
    up = client.create_multipart_upload(Bucket=BUCKET, Key="sdk/mp", ContentType="text/plain",
                                        ContentLanguage="en")
    uid = up["UploadId"]
    a, b = pattern(1024 * 1024, 1), pattern(10, 2)
    p1 = client.upload_part(Bucket=BUCKET, Key="sdk/mp", Body=a, PartNumber=1, UploadId=uid)
    p2 = client.upload_part(Bucket=BUCKET, Key="sdk/mp", Body=b, PartNumber=2, UploadId=uid,
                            EnableMD5=True)
    parts = client.list_parts(Bucket=BUCKET, Key="sdk/mp", UploadId=uid)
    check("list_parts", [p["PartNumber"] for p in parts.get("Part", [])] == ["1", "2"], parts)
    ups = client.list_multipart_uploads(Bucket=BUCKET, Prefix="sdk/")
    check("list_multipart_uploads", any(u["UploadId"] == uid for u in ups.get("Upload", [])), ups)
    done = client.complete_multipart_upload(
        Bucket=BUCKET, Key="sdk/mp", UploadId=uid,
        MultipartUpload={"Part": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                  {"PartNumber": 2, "ETag": p2["ETag"]}]})
    check("complete_multipart_upload answers its result", "ETag" in done and done.get("Key") == "sdk/mp", done)
    h = client.head_object(Bucket=BUCKET, Key="sdk/mp")
    check("a completed upload has its Initiate's headers",
          h.get("Content-Language") == "en" and h.get("Content-Length") == str(len(a) + len(b)), h)
    # A merge that takes seconds (a big object on COS): the answer streams keep-alive spaces
    # before its result, and the SDK must still parse it.
    set_fault("complete_delay_ms", 2500)
    try:
        up = client.create_multipart_upload(Bucket=BUCKET, Key="sdk/slow")
        p = client.upload_part(Bucket=BUCKET, Key="sdk/slow", Body=b"slow", PartNumber=1,
                               UploadId=up["UploadId"])
        began = time.time()
        done = client.complete_multipart_upload(
            Bucket=BUCKET, Key="sdk/slow", UploadId=up["UploadId"],
            MultipartUpload={"Part": [{"PartNumber": 1, "ETag": p["ETag"]}]})
        check("complete_multipart_upload of a merge that takes 2.5 s (keep-alive spaces)",
              "ETag" in done and time.time() - began >= 2.4, done)
    finally:
        set_fault("complete_delay_ms", 0)
    up = client.create_multipart_upload(Bucket=BUCKET, Key="sdk/aborted")
    client.abort_multipart_upload(Bucket=BUCKET, Key="sdk/aborted", UploadId=up["UploadId"])
    ups = client.list_multipart_uploads(Bucket=BUCKET, Prefix="sdk/aborted")
    check("abort_multipart_upload", not ups.get("Upload"), ups)


AWKWARD = ["sdk/awk/a b.txt", "sdk/awk/a+b.txt", "sdk/awk/百分%25.txt", "sdk/awk/q?#&=.txt",
           "sdk/awk/sp ace/inner file", "sdk/awk/tilde~*'()!.txt"]


def listings():
    for k in AWKWARD:
        client.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    got, marker = [], ""
    while True:
        page = client.list_objects(Bucket=BUCKET, Prefix="sdk/awk/", Marker=marker, MaxKeys=1)
        got += [c["Key"] for c in page.get("Contents", [])]
        if page.get("IsTruncated") != "true":
            break
        marker = page["NextMarker"]
    check("list_objects pages one key at a time past keys with spaces and +",
          got == sorted(AWKWARD), got)
    page = client.list_objects(Bucket=BUCKET, Prefix="sdk/awk/sp ace/")
    check("list_objects with a space in the prefix",
          [c["Key"] for c in page.get("Contents", [])] == ["sdk/awk/sp ace/inner file"], page)
    page = client.list_objects(Bucket=BUCKET, Prefix="sdk/awk/", Delimiter="/")
    check("list_objects with a delimiter",
          [p["Prefix"] for p in page.get("CommonPrefixes", [])] == ["sdk/awk/sp ace/"], page)
    for k in AWKWARD:
        check("get_object of %r" % k,
              body_of(client.get_object(Bucket=BUCKET, Key=k)) == k.encode())
    v = client.list_objects_versions(Bucket=BUCKET, Prefix="sdk/awk/")
    versions = v.get("Version", [])
    check("list_objects_versions: every object as version null",
          sorted(x["Key"] for x in versions) == sorted(AWKWARD)
          and all(x["VersionId"] == "null" and x["IsLatest"] == "true" for x in versions), v)
    r = client.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": k} for k in AWKWARD],
                                                      "Quiet": "false"})
    check("delete_objects", len(r.get("Deleted", [])) == len(AWKWARD), r)
    page = client.list_objects(Bucket=BUCKET, Prefix="sdk/awk/")
    check("deleted keys are gone", not page.get("Contents"), page)
    client.put_object(Bucket=BUCKET, Key="sdk/del", Body=b"x")
    client.delete_object(Bucket=BUCKET, Key="sdk/del")
    check("delete_object", not client.object_exists(Bucket=BUCKET, Key="sdk/del"))


def acl_and_tagging():
    data = b"data that subresources must not touch"
    client.put_object(Bucket=BUCKET, Key="sdk/acl", Body=data, CacheControl="max-age=1")
    client.put_object_acl(Bucket=BUCKET, Key="sdk/acl", ACL="public-read")
    acl = client.get_object_acl(Bucket=BUCKET, Key="sdk/acl")
    check("put_object_acl + get_object_acl: public-read", acl.get("CannedACL") == "public-read", acl)
    check("get_object_acl names the owner", "qcs::cam::uin/" in acl["Owner"]["ID"], acl)
    client.put_object_acl(Bucket=BUCKET, Key="sdk/acl", AccessControlPolicy={
        "Owner": {"ID": acl["Owner"]["ID"]},
        "AccessControlList": {"Grant": [{"Grantee": {"ID": acl["Owner"]["ID"], "Type": "CanonicalUser"},
                                         "Permission": "FULL_CONTROL"}]}})
    acl = client.get_object_acl(Bucket=BUCKET, Key="sdk/acl")
    check("put_object_acl with an AccessControlPolicy: private", acl.get("CannedACL") == "private", acl)
    g = client.get_object(Bucket=BUCKET, Key="sdk/acl")
    check("an ACL leaves the object's bytes and headers",
          body_of(g) == data and g.get("Cache-Control") == "max-age=1", g)
    e = service_error(lambda: client.put_object_acl(Bucket=BUCKET, Key="sdk/acl",
                                                    GrantRead='id="qcs::cam::uin/1:uin/2"'))
    check("grants to other accounts are refused with 501 NotImplemented",
          e is not None and e.get_status_code() == 501 and e.get_error_code() == "NotImplemented")
    client.put_bucket_acl(Bucket=BUCKET, ACL="public-read")
    check("put_bucket_acl + get_bucket_acl",
          client.get_bucket_acl(Bucket=BUCKET).get("CannedACL") == "public-read")
    client.put_bucket_acl(Bucket=BUCKET, ACL="private")
    tags = {"TagSet": {"Tag": [{"Key": "team", "Value": "web"}, {"Key": "env", "Value": "prod"}]}}
    client.put_object_tagging(Bucket=BUCKET, Key="sdk/acl", Tagging=tags)
    t = client.get_object_tagging(Bucket=BUCKET, Key="sdk/acl")
    check("put_object_tagging + get_object_tagging",
          t["TagSet"]["Tag"] == tags["TagSet"]["Tag"], t)
    h = client.head_object(Bucket=BUCKET, Key="sdk/acl")
    check("head_object reports x-cos-tagging-count", h.get("x-cos-tagging-count") == "2", h)
    check("tagging leaves the bytes",
          body_of(client.get_object(Bucket=BUCKET, Key="sdk/acl")) == data)
    client.delete_object_tagging(Bucket=BUCKET, Key="sdk/acl")
    t = client.get_object_tagging(Bucket=BUCKET, Key="sdk/acl")
    check("delete_object_tagging removes the tags, not the object",
          not (t.get("TagSet") or {}).get("Tag")
          and body_of(client.get_object(Bucket=BUCKET, Key="sdk/acl")) == data, t)
    client.put_object(Bucket=BUCKET, Key="sdk/tagged", Body=b"t", Tagging="a=1&b=x%20y")
    t = client.get_object_tagging(Bucket=BUCKET, Key="sdk/tagged")
    check("put_object with Tagging (x-cos-tagging)",
          t["TagSet"]["Tag"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "x y"}], t)
    client.copy_object(Bucket=BUCKET, Key="sdk/tagged-copy",
                       CopySource={"Bucket": BUCKET, "Key": "sdk/tagged", "Region": REGION})
    t = client.get_object_tagging(Bucket=BUCKET, Key="sdk/tagged-copy")
    check("copy_object keeps the source's tags", len(t["TagSet"]["Tag"]) == 2, t)
    loc = client.get_bucket_location(Bucket=BUCKET)
    check("get_bucket_location", loc.get("LocationConstraint") == REGION, loc)
    for name, call in [("put_bucket_cors", lambda: client.put_bucket_cors(
            Bucket=BUCKET, CORSConfiguration={"CORSRule": [{"AllowedOrigin": "*",
                                                            "AllowedMethod": "GET"}]})),
                       ("get_bucket_lifecycle", lambda: client.get_bucket_lifecycle(Bucket=BUCKET)),
                       ("put_bucket_versioning", lambda: client.put_bucket_versioning(
                           Bucket=BUCKET, Status="Enabled"))]:
        e = service_error(call)
        check("%s is refused with 501 NotImplemented" % name,
              e is not None and e.get_status_code() == 501 and e.get_error_code() == "NotImplemented",
              e and e.get_digest_msg())
    check("refused calls left the object alone",
          body_of(client.get_object(Bucket=BUCKET, Key="sdk/acl")) == data)


def fetch(url, method="GET", data=None):
    req = urllib.request.Request(url, method=method, data=data)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": PROXY}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def presigned():
    client.put_object(Bucket=BUCKET, Key="sdk/pre sign.txt", Body=b"presigned body")
    url = client.get_presigned_download_url(Bucket=BUCKET, Key="sdk/pre sign.txt", Expired=60)
    check("get_presigned_download_url: GET", fetch(url) == (200, b"presigned body"), url)
    url = client.get_presigned_url(Bucket=BUCKET, Key="sdk/pre sign.txt", Method="HEAD", Expired=60)
    check("get_presigned_url: HEAD", fetch(url, "HEAD")[0] == 200)
    url = client.get_presigned_url(Bucket=BUCKET, Key="sdk/presigned-put", Method="PUT", Expired=60)
    status, _ = fetch(url, "PUT", b"put through a URL")
    check("get_presigned_url: PUT", status == 200 and body_of(
        client.get_object(Bucket=BUCKET, Key="sdk/presigned-put")) == b"put through a URL")
    url = client.get_presigned_download_url(Bucket=BUCKET, Key="sdk/pre sign.txt", Expired=1)
    time.sleep(2.2)
    status, body = fetch(url)
    check("an expired presigned URL: 403", status == 403 and b"expired" in body, (status, body))
    url = client.get_presigned_download_url(Bucket=BUCKET, Key="sdk/pre sign.txt", Expired=60)
    status, _ = fetch(url.replace("q-signature=", "q-signature=0"))
    check("a presigned URL with a wrong signature: 403", status == 403)


def append_and_restore():
    r = client.append_object(Bucket=BUCKET, Key="sdk/log", Position=0, Data=b"one ")
    pos = int(r["x-cos-next-append-position"])
    client.append_object(Bucket=BUCKET, Key="sdk/log", Position=pos, Data=b"two")
    check("append_object twice",
          body_of(client.get_object(Bucket=BUCKET, Key="sdk/log")) == b"one two")
    client.put_object(Bucket=BUCKET, Key="sdk/cold", Body=b"archived", StorageClass="ARCHIVE")
    e = service_error(lambda: client.get_object(Bucket=BUCKET, Key="sdk/cold"))
    check("an ARCHIVE object cannot be read before a restore",
          e is not None and e.get_error_code() == "InvalidObjectState")
    client.restore_object(Bucket=BUCKET, Key="sdk/cold",
                          RestoreRequest={"Days": 1, "CASJobParameters": {"Tier": "Expedited"}})
    end = time.time() + 10
    while time.time() < end:
        h = client.head_object(Bucket=BUCKET, Key="sdk/cold")
        if 'ongoing-request="false"' in h.get("x-cos-restore", ""):
            break
        time.sleep(0.2)
    check("restore_object, then get_object",
          body_of(client.get_object(Bucket=BUCKET, Key="sdk/cold")) == b"archived")


# --- the SDK and the mount, each reading what the other wrote -------------------------------
def through_the_mount():
    gz = pattern(4000, 11)
    client.put_object(Bucket=BUCKET, Key="web/app.css", Body=gz, ContentType="text/css",
                      Metadata={"x-cos-meta-app": "cdn"}, **STANDARD)
    path = os.path.join(MOUNT, "web", "app.css")
    with open(path, "rb") as f:
        check("the mount reads what the SDK wrote, byte for byte", f.read() == gz)
    os.chmod(path, 0o600)
    h = client.head_object(Bucket=BUCKET, Key="web/app.css")
    check("chmod keeps Content-Encoding, Cache-Control and every standard header",
          kept_standard(h) and h.get("Content-Type") == "text/css", h)
    check("chmod keeps another application's x-cos-meta-*, and stores the mode",
          h.get("x-cos-meta-app") == "cdn" and int(h.get("x-cos-meta-mode", "0")) & 0o777 == 0o600, h)
    os.utime(path, (1600000000.25, 1600000000.75))
    h = client.head_object(Bucket=BUCKET, Key="web/app.css")
    check("utimens: x-cos-meta-mtime in whole seconds, as Tencent's cosfs reads it",
          h.get("x-cos-meta-mtime") == "1600000000" and kept_standard(h), h)
    check("the mount reads the exact time back", os.stat(path).st_mtime_ns == 1600000000750000000)
    os.setxattr(path, "user.note", b"kept")
    check("setxattr keeps the standard headers",
          kept_standard(client.head_object(Bucket=BUCKET, Key="web/app.css")))
    os.setxattr(path, "user.cos.storage_class", b"STANDARD_IA")
    h = client.head_object(Bucket=BUCKET, Key="web/app.css")
    check("the storage-class xattr keeps the standard headers",
          kept_standard(h) and h.get("x-cos-storage-class") == "STANDARD_IA", h)
    os.rename(path, os.path.join(MOUNT, "web", "moved.css"))
    h = client.head_object(Bucket=BUCKET, Key="web/moved.css")
    check("rename keeps the standard headers and metadata",
          kept_standard(h) and h.get("x-cos-meta-app") == "cdn", h)
    os.makedirs(os.path.join(MOUNT, "web", "sub"))
    os.rename(os.path.join(MOUNT, "web"), os.path.join(MOUNT, "site"))
    h = client.head_object(Bucket=BUCKET, Key="site/moved.css")
    check("a directory rename keeps its files' headers", kept_standard(h), h)

    mine = pattern(300000, 5)
    with open(os.path.join(MOUNT, "site", "page.html"), "wb") as f:
        f.write(mine)
    g = client.get_object(Bucket=BUCKET, Key="site/page.html")
    check("the SDK reads what the mount wrote, byte for byte", body_of(g) == mine)
    check("a new file's Content-Type follows its extension",
          g.get("Content-Type") == "text/html", g.get("Content-Type"))
    mtime = g.get("x-cos-meta-mtime", "")
    check("a new file's mtime header is whole seconds", mtime.isdigit()
          and abs(int(mtime) - time.time()) < 600, mtime)
    with open(os.path.join(MOUNT, "site", "README"), "w") as f:
        f.write("x")
    check("a name without an extension is application/octet-stream",
          client.head_object(Bucket=BUCKET, Key="site/README").get("Content-Type")
          == "application/octet-stream")


def coscmd(tmp):
    conf = os.path.join(tmp, "cos.conf")
    with open(conf, "w") as f:
        f.write("[common]\nsecret_id = %s\nsecret_key = %s\nbucket = %s\nregion = %s\n"
                "max_thread = 2\npart_size = 1\nschema = http\nretry = 1\n" % (SID, SKEY, BUCKET, REGION))
    env = dict(os.environ, http_proxy=PROXY, HTTP_PROXY=PROXY, no_proxy="", NO_PROXY="")

    def cmd(*args):
        p = subprocess.run(["coscmd", "-c", conf] + list(args), env=env, capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr

    data = pattern(3 * 1024 * 1024 + 9, 9)
    local = os.path.join(tmp, "cmd-up.bin")
    with open(local, "wb") as f:
        f.write(data)
    rc, out = cmd("upload", local, "cmd/up.bin")
    check("coscmd upload (multipart)", rc == 0, out)
    with open(os.path.join(MOUNT, "cmd", "up.bin"), "rb") as f:
        check("the mount reads what coscmd uploaded", f.read() == data)
    with open(os.path.join(MOUNT, "cmd", "from mount.txt"), "wb") as f:
        f.write(b"written through the mount\n")
    down = os.path.join(tmp, "cmd-down.txt")
    rc, out = cmd("download", "cmd/from mount.txt", down)
    with open(down, "rb") as f:
        got = f.read()
    check("coscmd download of a file the mount wrote", rc == 0 and got == b"written through the mount\n", out)
    rc, out = cmd("download", "cmd/up.bin", os.path.join(tmp, "cmd-big"))
    with open(os.path.join(tmp, "cmd-big"), "rb") as f:
        check("coscmd download (ranged parts)", rc == 0 and f.read() == data, out)
    rc, out = cmd("list", "cmd/")
    check("coscmd list", rc == 0 and "up.bin" in out and "from mount.txt" in out, out)
    rc, out = cmd("delete", "-f", "cmd/up.bin")
    check("coscmd delete", rc == 0 and not client.object_exists(Bucket=BUCKET, Key="cmd/up.bin"), out)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in [("objects", objects), ("copies", copies),
                         ("uploads", lambda: uploads(tmp)), ("multipart", multipart),
                         ("listings", listings), ("acl and tagging", acl_and_tagging),
                         ("presigned", presigned), ("append and restore", append_and_restore),
                         ("the mount", through_the_mount), ("coscmd", lambda: coscmd(tmp))]:
            run(name, fn)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
