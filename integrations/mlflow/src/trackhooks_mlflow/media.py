"""Rich records in MLflow, replayed from the store's read API (``RunView.media_counts()``, then
``rec.media(key)`` for the keys that grew).

- images and figures: uploaded the way ``MlflowClient.log_image(image, key=, step=)`` stores them
  (``images/<key with / as ~>+step+<step>+timestamp+<ms>+<uuid>.png`` and a 256-pixel
  ``...+compressed.webp`` thumbnail, run tag ``mlflow.loggedImages``), so MLflow's UI shows them
  with its step slider. The uuid is derived from the run, key and position, so an upload repeated
  after a crash overwrites the same file instead of adding one.
- tables: ``tables/<key>/<n>-step<step>.json`` in ``MlflowClient.log_table``'s format
  (``{"columns": [...], "data": [[...]]}``).
- confusion matrices, curves and histograms: ``media/<key>/<n>-step<step>.json`` holding the whole
  record (key, kind, step, epoch, timestamp, data).

The run's cursor counts the records of each key sent (``state["media"]``), committed after each upload.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import uuid
from typing import Any

LOGGED_IMAGES_TAG = "mlflow.loggedImages"
THUMBNAIL_SIZE = 256  # mlflow.tracking.multimedia.COMPRESSED_IMAGE_SIZE
_IMAGE_KEY_UNSAFE = re.compile(r"[^\w\-. /]")  # log_image accepts alphanumerics, _ - . space and /


def image_key(key: str) -> str:
    return _IMAGE_KEY_UNSAFE.sub("_", key).replace("/", "~")


def _uuid(run_id: str, key: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trackhooks:{run_id}:{key}:{index}"))


def _png_and_thumbnail(path: str) -> tuple[bytes, bytes | None, str]:
    """(image bytes, webp thumbnail or None, extension). JPEG files become PNG when Pillow is there."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        from PIL import Image
    except ImportError:
        return raw, None, "png" if raw[:4] == b"\x89PNG" else "jpg"
    img = Image.open(io.BytesIO(raw))
    img.load()
    if raw[:4] != b"\x89PNG":
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        raw = buf.getvalue()
    w, h = img.size
    if w > h:
        size = (THUMBNAIL_SIZE, max(1, int(h * THUMBNAIL_SIZE / w)))
    else:
        size = (max(1, int(w * THUMBNAIL_SIZE / h)), THUMBNAIL_SIZE)
    thumb = img.resize(size)
    buf = io.BytesIO()
    try:
        thumb.save(buf, format="WEBP")
    except (OSError, KeyError):  # Pillow without WebP: a PNG under the name the UI asks for
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
    return raw, buf.getvalue(), "png"


def replay_media(view: Any, cursor: Any, remote: Any, be: Any, encode_key: Any) -> int:
    """Upload the media records the cursor lacks; returns how many were sent."""
    rec = view.rec
    st = cursor.state
    done: dict[str, int] = st.setdefault("media", {})
    grown = [k for k, count in sorted(view.media_counts().items()) if count > done.get(k, 0)]
    todo = [(k, rec.media(k)) for k in grown]
    if not todo:
        return 0
    n = 0
    tmp = tempfile.mkdtemp(prefix="trackhooks-mlflow-media-")
    try:
        def upload(data: bytes, artifact_path: str) -> None:
            local = os.path.join(tmp, os.path.basename(artifact_path))
            with open(local, "wb") as f:
                f.write(data)
            be.upload(remote, local, artifact_path)
            os.unlink(local)

        for key, records in todo:
            for i in range(done.get(key, 0), len(records)):
                m = records[i]
                if m.kind in ("image", "figure"):
                    if m.path is not None:
                        if not st.get("images_tag"):
                            be.log_batch(remote.run_id, [], [], [{"key": LOGGED_IMAGES_TAG, "value": "true"}])
                            st["images_tag"] = True
                        full, thumb, ext = _png_and_thumbnail(m.path)
                        base = (f"images/{image_key(key)}+step+{m.step}+timestamp+{int(m.timestamp * 1000)}"
                                f"+{_uuid(rec.id, key, i)}")
                        upload(full, f"{base}.{ext}")
                        upload(thumb if thumb is not None else full, f"{base}+compressed.webp")
                elif m.kind == "table":
                    body = {"columns": m.data.get("columns", []), "data": m.data.get("rows", [])}
                    upload(json.dumps(body, allow_nan=True, default=str).encode(),
                           f"tables/{encode_key(key)}/{i:06d}-step{m.step}.json")
                else:
                    body = {"key": key, "kind": m.kind, "step": m.step, "epoch": m.epoch,
                            "timestamp": m.timestamp, "data": m.data}
                    upload(json.dumps(body, allow_nan=True, default=str).encode(),
                           f"media/{encode_key(key)}/{i:06d}-step{m.step}.json")
                done[key] = i + 1
                cursor.commit()
                n += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n
