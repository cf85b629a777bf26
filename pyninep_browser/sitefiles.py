"""How a built site's files are served: the MIME types ES modules, wasm and our wheel need, which
Python's ``mimetypes`` does not all know. The ``site`` command and ``serve --site`` share them."""

SITE_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".whl": "application/zip",
    ".img": "application/octet-stream",
}
