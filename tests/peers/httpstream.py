# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Several HTTP responses read from one connection's buffered stream, for
the test clients that build their requests byte by byte."""


class Shared:
    """Lets http.client read many responses from one buffered stream: it
    closes its file after each response, so the file given never closes."""

    class NoClose:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def close(self):
            pass

    def __init__(self, f):
        self.f = self.NoClose(f)

    def makefile(self, *a, **k):
        return self.f
