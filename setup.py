"""The one C extension; everything else is configured in pyproject.toml.

``dnsseal.server._udpfast`` is the UDP datagram loop (recvmmsg/sendmmsg; see the comment at
the top of the C file).  It is optional: where it cannot be built, the server answers from
the pure-Python loop, and tests/server/test_udpfast.py fails so that CI notices.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dnsseal.server._udpfast",
            sources=["src/dnsseal/server/_udpfast.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
