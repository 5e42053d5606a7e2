// libarchive, for OCI layer tarballs: the only place that includes its headers.
#include <archive.h>
#include <archive_entry.h>
