/* A little NVML with the C ABI of libnvidia-ml.so.1 (nvml.h, driver R580), for testing
 * the probe's ctypes bindings where no NVIDIA driver is installed. Two GPUs: an H100
 * and an RTX 4090. Build variants:
 *   -DINIT_FAILS  nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED (9)
 *   -DNO_V2       no nvmlDeviceGetMemoryInfo_v2 (drivers before R510)
 * Hostile variants (tests/hostile): a broken or lying driver.
 *   -DSLEEPS      nvmlInit_v2 never returns
 *   -DABORTS      nvmlInit_v2 calls abort()
 *   -DHUGE_COUNT  nvmlDeviceGetCount_v2 says 2^32-1 GPUs
 *   -DEVIL_NAME   the first GPU's name carries terminal escapes
 *   -DLYING_MEMORY  more memory reserved than there is; compute capability -1.5
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define GIB 1073741824ULL

#ifdef EVIL_NAME
static const char *NAMES[] = {"NVIDIA \x1b]0;owned\x07\x1b[2J\x1b[31mH100", "NVIDIA GeForce RTX 4090"};
#else
static const char *NAMES[] = {"NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"};
#endif
static const char *UUIDS[] = {"GPU-04a2c780-8426-ca9f-b43c-94b90bee3159",
                              "GPU-7d1e0b5a-1111-2222-3333-444455556666"};
static const int CC[][2] = {{9, 0}, {8, 9}};
static const unsigned long long TOTAL[] = {85520809984ULL, 25757220864ULL};
static const unsigned long long RESERVED[] = {503316480ULL, 347078656ULL};

static int index_of(void *handle) { return (int)((size_t)handle - 1); }
static void copy(char *buf, unsigned int n, const char *s) {
    strncpy(buf, s, n);
    buf[n - 1] = 0;
}

int nvmlInit_v2(void) {
#ifdef SLEEPS
    for (;;) sleep(1000);
#endif
#ifdef ABORTS
    abort();
#endif
#ifdef INIT_FAILS
    return NVML_ERROR_DRIVER_NOT_LOADED;
#else
    return NVML_SUCCESS;
#endif
}
int nvmlShutdown(void) { return NVML_SUCCESS; }
const char *nvmlErrorString(int code) {
    return code == NVML_ERROR_DRIVER_NOT_LOADED ? "Driver Not Loaded" : "Unknown Error";
}
int nvmlSystemGetDriverVersion(char *buf, unsigned int n) {
    copy(buf, n, "580.159.04");
    return NVML_SUCCESS;
}
int nvmlDeviceGetCount_v2(unsigned int *count) {
#ifdef HUGE_COUNT
    *count = 4294967295u;
#else
    *count = 2;
#endif
    return NVML_SUCCESS;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **handle) {
#ifdef HUGE_COUNT
    *handle = (void *)(size_t)(i % 2 + 1);
    return NVML_SUCCESS;
#endif
    if (i >= 2) return NVML_ERROR_INVALID_ARGUMENT;
    *handle = (void *)(size_t)(i + 1);
    return NVML_SUCCESS;
}
int nvmlDeviceGetName(void *h, char *buf, unsigned int n) {
    copy(buf, n, NAMES[index_of(h)]);
    return NVML_SUCCESS;
}
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int n) {
    copy(buf, n, UUIDS[index_of(h)]);
    return NVML_SUCCESS;
}
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
#ifdef LYING_MEMORY
    *major = -1;
    *minor = -5;
    return NVML_SUCCESS;
#endif
    *major = CC[index_of(h)][0];
    *minor = CC[index_of(h)][1];
    return NVML_SUCCESS;
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    m->total = TOTAL[index_of(h)];
    m->used = 0;
    m->free = m->total;
    return NVML_SUCCESS;
}
#ifndef NO_V2
int nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    /* NVML_STRUCT_VERSION(Memory, 2): a caller with another layout is refused. */
    if (m->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_INVALID_ARGUMENT;
    m->total = TOTAL[index_of(h)];
#ifdef LYING_MEMORY
    m->reserved = TOTAL[index_of(h)] * 2;
#else
    m->reserved = RESERVED[index_of(h)];
#endif
    m->used = 0;
    m->free = m->total - m->reserved;
    return NVML_SUCCESS;
}
#endif
