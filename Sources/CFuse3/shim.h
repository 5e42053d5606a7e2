#ifndef STRATA_CFUSE3_SHIM_H
#define STRATA_CFUSE3_SHIM_H
// The only place that includes libfuse: the API level is fixed here.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#endif
