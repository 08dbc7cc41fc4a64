// Declarations only (types and constants of libpq-fe.h): the library itself is loaded at run time
// (Sources/PGKeep/Postgres/LibPQ.swift). Without pkg-config's -I, Debian's header is found under
// its directory name; its own "postgres_ext.h" includes resolve next to it.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif
