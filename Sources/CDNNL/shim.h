// oneDNN 2.x C API (Debian's libdnnl-dev ships no pkg-config file, so the library is linked by name).
#include <oneapi/dnnl/dnnl.h>
