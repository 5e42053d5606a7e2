#!/usr/bin/env python3
"""oci_layout.py DIR TAG TARBALL: writes an OCI image layout in DIR holding one image, TAG, whose one layer is
TARBALL. As a module, `write(dir, {tag: tarball bytes})` writes one layout holding an image for each tag; a tag may
also map to a list of (tarball bytes, created_by) pairs, its layers from the base up."""
import hashlib, json, os, sys


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def write(layout, images):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    manifests = []
    for tag, layers in images.items():
        if isinstance(layers, bytes):
            layers = [(layers, None)]
        descriptors = [blob(layout, tarball) for tarball, _ in layers]
        config = {"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}}
        if any(made for _, made in layers):
            config["history"] = [{"created_by": made or ""} for _, made in layers]
        config = blob(layout, json.dumps(config).encode())
        manifest = blob(layout, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
            "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **d) for d in descriptors]}).encode())
        manifests.append(dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                              annotations={"org.opencontainers.image.ref.name": tag}, **manifest))
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


if __name__ == "__main__":
    with open(sys.argv[3], "rb") as f:
        write(sys.argv[1], {sys.argv[2]: f.read()})
