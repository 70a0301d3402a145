"""A Secrets Manager rotation function written the way AWS's published Python template is
structured (``rotation_function``), and a tiny HTTP host that serves it as a Coffer rotation hook
(``host``). The function is plain AWS code: it knows nothing about Coffer; the host turns each
POSTed step into a Lambda-style invocation."""
