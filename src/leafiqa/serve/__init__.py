"""``leaf serve``: the HTTP scoring service (``service``), its page (``page``) and the limits it
puts on what a client may send (``http_limits``, shared with the rating service)."""
