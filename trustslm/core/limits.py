"""Bounds on what trustslm reads from files it is given, in one place (SECURITY.md lists them).

Every file a user or a third party hands over (data, configs, policies, probe specs, mock scripts,
reports) is untrusted: without bounds a small file can make a reader use unbounded memory or
time (a YAML "billion laughs", a JSON array nested a million deep, a multi-gigabyte "config").
Readers stop at these bounds with a one-line :class:`~trustslm.core.errors.BadInputError`
(exit code 2); they never read a byte past a file's bound.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: A data file (JSONL, CSV, JSON or text) a probe or scorer check reads.
MAX_DATA_FILE_BYTES = 512 * MiB
#: A YAML file: probe options (``--config``), gate policies, probe specs, mock scripts.
MAX_YAML_FILE_BYTES = 4 * MiB
#: Nodes of a YAML document once its aliases are expanded: a few anchors can otherwise stand
#: for billions of nodes ("billion laughs"), which every later walk over the data would expand.
MAX_YAML_NODES = 500_000
#: A ``report.json`` (``report render``, ``gate``, ``diff``, ``card``, ``--baseline``).
MAX_REPORT_FILE_BYTES = 64 * MiB
#: ``samples.jsonl`` and ``units.jsonl`` beside a report.
MAX_REPORT_SIDE_FILE_BYTES = 2 * GiB
#: Lists and mappings nested in one JSON or YAML value (a data row, a config, a report):
#: real files nest under 10 deep; the parsers and every later walk recurse once per level.
MAX_NESTING_DEPTH = 64

# -- what a model folder makes trustslm read (trustslm/models/validate.py) ---------------------
#: A JSON config, index or ``modules.json`` file that trustslm parses.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
#: A tokenizer or vocabulary file handed to transformers (Gemma 3's tokenizer.json is 33 MB).
MAX_SIDE_FILE_BYTES = 256 * 1024 * 1024
#: A chat template file.
MAX_TEMPLATE_BYTES = 1024 * 1024
#: Entries looked at in a model folder.
MAX_FOLDER_ENTRIES = 10_000
#: A safetensors header (the safetensors library allows 100 MB; real headers are kilobytes).
MAX_SAFETENSORS_HEADER = 32 * 1024 * 1024
#: Tensors in one safetensors file.
MAX_TENSORS = 200_000
#: GGUF metadata: key-value pairs, elements of one array, bytes of one string, tensors.
MAX_GGUF_KV = 65_536
MAX_GGUF_ARRAY = 1 << 21
MAX_GGUF_STRING = 1024 * 1024
MAX_GGUF_TENSORS = 100_000
#: Elements of all GGUF metadata arrays together; arrays nest at most this deep.
MAX_GGUF_ELEMENTS = 1 << 23
MAX_GGUF_NESTING = 2
#: GGML tensors have at most 4 dimensions.
MAX_GGUF_DIMS = 4

# -- rendering a model's chat template (trustslm/models/chat_guard.py) -------------------------
#: Steps (template line events and Python calls) one rendering may take. An ordinary template
#: takes a few hundred to a few thousand.
MAX_TEMPLATE_STEPS = 1_000_000
#: Wall-clock bound of one rendering, checked every 1024 steps.
MAX_TEMPLATE_SECONDS = 10.0
#: Characters a rendering may produce.
MAX_RENDERED_CHARS = 1_000_000

# -- mitigation wrappers (mitigation.json) -----------------------------------------------------
#: ``mitigation.json`` holds the steps and their resolved values (a token list, a threshold): kilobytes.
MAX_WRAPPER_FILE_BYTES = 16 * 1024 * 1024
#: At most this many steps in one wrapper.
MAX_WRAPPER_STEPS = 64

# -- training records (training_record.json) ---------------------------------------------------
#: A record is a few kilobytes (the data transform's details included); anything far larger is not one.
MAX_RECORD_FILE_BYTES = 1024 * 1024
#: The training data a record names is hashed (to check it is what was trained on) only up to this size.
MAX_RECORDED_DATA_BYTES = 4 * 1024**3

# -- the request cache -------------------------------------------------------------------------
#: A stored result longer than this is not read (a generation or token-score list is far smaller).
MAX_RESULT_CHARS = 16 * 1024 * 1024

# -- a served model (trustslm/models/openai_api.py) ---------------------------------------------
#: One HTTP response body from an OpenAI-compatible server (a completion with echoed log-probs of a
#: few thousand tokens is a few megabytes); read no further.
MAX_RESPONSE_BYTES = 16 * MiB

#: Every bound above by name, for the docs and the tests.
LIMITS = {
    "MAX_DATA_FILE_BYTES": MAX_DATA_FILE_BYTES,
    "MAX_YAML_FILE_BYTES": MAX_YAML_FILE_BYTES,
    "MAX_YAML_NODES": MAX_YAML_NODES,
    "MAX_REPORT_FILE_BYTES": MAX_REPORT_FILE_BYTES,
    "MAX_REPORT_SIDE_FILE_BYTES": MAX_REPORT_SIDE_FILE_BYTES,
    "MAX_NESTING_DEPTH": MAX_NESTING_DEPTH,
    "MAX_CONFIG_BYTES": MAX_CONFIG_BYTES,
    "MAX_SIDE_FILE_BYTES": MAX_SIDE_FILE_BYTES,
    "MAX_TEMPLATE_BYTES": MAX_TEMPLATE_BYTES,
    "MAX_FOLDER_ENTRIES": MAX_FOLDER_ENTRIES,
    "MAX_SAFETENSORS_HEADER": MAX_SAFETENSORS_HEADER,
    "MAX_TENSORS": MAX_TENSORS,
    "MAX_GGUF_KV": MAX_GGUF_KV,
    "MAX_GGUF_ARRAY": MAX_GGUF_ARRAY,
    "MAX_GGUF_STRING": MAX_GGUF_STRING,
    "MAX_GGUF_TENSORS": MAX_GGUF_TENSORS,
    "MAX_GGUF_ELEMENTS": MAX_GGUF_ELEMENTS,
    "MAX_GGUF_NESTING": MAX_GGUF_NESTING,
    "MAX_GGUF_DIMS": MAX_GGUF_DIMS,
    "MAX_TEMPLATE_STEPS": MAX_TEMPLATE_STEPS,
    "MAX_TEMPLATE_SECONDS": MAX_TEMPLATE_SECONDS,
    "MAX_RENDERED_CHARS": MAX_RENDERED_CHARS,
    "MAX_WRAPPER_FILE_BYTES": MAX_WRAPPER_FILE_BYTES,
    "MAX_WRAPPER_STEPS": MAX_WRAPPER_STEPS,
    "MAX_RECORD_FILE_BYTES": MAX_RECORD_FILE_BYTES,
    "MAX_RECORDED_DATA_BYTES": MAX_RECORDED_DATA_BYTES,
    "MAX_RESULT_CHARS": MAX_RESULT_CHARS,
    "MAX_RESPONSE_BYTES": MAX_RESPONSE_BYTES,
}
