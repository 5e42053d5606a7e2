#ifndef STRATA_CFUSE3_SHIM_H
#define STRATA_CFUSE3_SHIM_H
// The only place that includes libfuse: the API level is fixed here.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
// The kernel's protocol structs (fuse_in_header, fuse_init_in, ...), for what FuseKit reads and writes on the
// device beside libfuse: the INIT negotiation libfuse 3.14 cannot make, and requests that come through a ring.
#include <linux/fuse.h>
#endif
