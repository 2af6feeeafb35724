# Put on PYTHONPATH for the test cluster's processes only (see tests/_ray_support.py). Every Ray
# process imports jsonschema, and jsonschema imports this optional package when it is installed;
# the real one compiles an Earley grammar at import (1-5 s of CPU per process on a small shared
# machine), which can push Ray's own agent past the raylet's 15-second start-up wait. Without
# it jsonschema only skips its "iri" format checks, which neither Ray nor plait use.
raise ImportError("rfc3987_syntax is left out of the Ray test cluster to keep start-up fast")
