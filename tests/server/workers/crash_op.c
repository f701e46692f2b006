/* A custom ONNX Runtime operator for the poison-request tests: Y = X for float tensors, except that an element
 * equal to POISON aborts the process (SIGABRT), a real crash of ONNX Runtime tied to one request's content.
 *
 * ONNX Runtime's wheel ships no C headers, so this file declares the little of the C API it uses itself.
 * The API is a table of function pointers whose order never changes (new functions are only appended), so a
 * call is made through its position in the table; the positions below are those of functions that ONNX
 * Runtime 1.0 (API version 1) already had, which every later version keeps. The operator describes itself
 * as an OrtCustomOp of version 1 and fills the members added since with what a plain operator means
 * (required inputs, no aliasing, every opset), because ONNX Runtime 1.32 calls some of them whatever the
 * version says.
 *
 * Built by the test with: gcc -shared -fPIC -O2 -o libcrash_op.so crash_op.c
 * Registered through config.yaml's session.custom_op_libraries; ONNX Runtime calls RegisterCustomOps.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POISON 666.0f
#define TYPE_FLOAT 1 /* ONNXTensorElementDataType: FLOAT */

typedef void *Status; /* OrtStatus*: NULL means success */
typedef void *(*Function)(void);

/* Positions in the OrtApi table (the functions of API version 1). */
enum {
    CREATE_CUSTOM_OP_DOMAIN = 26,
    CUSTOM_OP_DOMAIN_ADD = 27,
    ADD_CUSTOM_OP_DOMAIN = 28,
    GET_TENSOR_MUTABLE_DATA = 51,
    GET_DIMENSIONS_COUNT = 61,
    GET_DIMENSIONS = 62,
    GET_TENSOR_SHAPE_ELEMENT_COUNT = 64,
    GET_TENSOR_TYPE_AND_SHAPE = 65,
    KERNEL_CONTEXT_GET_INPUT = 90,
    KERNEL_CONTEXT_GET_OUTPUT = 91,
    RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99,
};

typedef struct {
    const Function *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} ApiBase;

typedef struct CustomOp {
    uint32_t version;
    void *(*CreateKernel)(const struct CustomOp *op, const void *api, const void *info);
    const char *(*GetName)(const struct CustomOp *op);
    const char *(*GetExecutionProviderType)(const struct CustomOp *op);
    int (*GetInputType)(const struct CustomOp *op, size_t index);
    size_t (*GetInputTypeCount)(const struct CustomOp *op);
    int (*GetOutputType)(const struct CustomOp *op, size_t index);
    size_t (*GetOutputTypeCount)(const struct CustomOp *op);
    void (*KernelCompute)(void *kernel, void *context);
    void (*KernelDestroy)(void *kernel);
    /* Members added after version 1: ONNX Runtime 1.32 calls some of them whatever the version says. */
    int (*GetInputCharacteristic)(const struct CustomOp *op, size_t index);
    int (*GetOutputCharacteristic)(const struct CustomOp *op, size_t index);
    int (*GetInputMemoryType)(const struct CustomOp *op, size_t index);
    int (*GetVariadicInputMinArity)(const struct CustomOp *op);
    int (*GetVariadicInputHomogeneity)(const struct CustomOp *op);
    int (*GetVariadicOutputMinArity)(const struct CustomOp *op);
    int (*GetVariadicOutputHomogeneity)(const struct CustomOp *op);
    void *CreateKernelV2, *KernelComputeV2, *InferOutputShapeFn; /* NULL: the version-1 members are used */
    int (*GetStartVersion)(const struct CustomOp *op);
    int (*GetEndVersion)(const struct CustomOp *op);
    size_t (*GetMayInplace)(int **input_index, int **output_index);
    void (*ReleaseMayInplace)(int *input_index, int *output_index);
    size_t (*GetAliasMap)(int **input_index, int **output_index);
    void (*ReleaseAliasMap)(int *input_index, int *output_index);
} CustomOp;

static const Function *api;

#define CALL(position, type) ((type)api[position])

static void *create_kernel(const CustomOp *op, const void *api_, const void *info) {
    (void)op, (void)api_, (void)info;
    return (void *)&api; /* no state: any non-NULL pointer */
}
static const char *name(const CustomOp *op) { (void)op; return "CrashOnPoison"; }
static const char *provider(const CustomOp *op) { (void)op; return NULL; /* CPU */ }
static int float_type(const CustomOp *op, size_t index) { (void)op, (void)index; return TYPE_FLOAT; }
static size_t one(const CustomOp *op) { (void)op; return 1; }
static void destroy(void *kernel) { (void)kernel; }
static int zero_at(const CustomOp *op, size_t index) { (void)op, (void)index; return 0; /* required; default memory */ }
static int one_int(const CustomOp *op) { (void)op; return 1; }
static int last_version(const CustomOp *op) { (void)op; return 2147483647; }
static size_t no_pairs(int **input_index, int **output_index) { *input_index = *output_index = NULL; return 0; }
static void release_pairs(int *input_index, int *output_index) { (void)input_index, (void)output_index; }

static void compute(void *kernel, void *context) {
    (void)kernel;
    const void *input = NULL;
    void *info = NULL, *output = NULL;
    size_t rank = 0, count = 0;
    int64_t dims[16];
    float *x = NULL, *y = NULL;
    if (CALL(KERNEL_CONTEXT_GET_INPUT, Status (*)(void *, size_t, const void **))(context, 0, &input) ||
        CALL(GET_TENSOR_TYPE_AND_SHAPE, Status (*)(const void *, void **))(input, &info) ||
        CALL(GET_DIMENSIONS_COUNT, Status (*)(const void *, size_t *))(info, &rank) || rank > 16 ||
        CALL(GET_DIMENSIONS, Status (*)(const void *, int64_t *, size_t))(info, dims, rank) ||
        CALL(GET_TENSOR_SHAPE_ELEMENT_COUNT, Status (*)(const void *, size_t *))(info, &count))
        abort(); /* the API refused: nothing sensible to return without a status to report */
    CALL(RELEASE_TENSOR_TYPE_AND_SHAPE_INFO, void (*)(void *))(info);
    if (CALL(GET_TENSOR_MUTABLE_DATA, Status (*)(const void *, void **))(input, (void **)&x) ||
        CALL(KERNEL_CONTEXT_GET_OUTPUT, Status (*)(void *, size_t, const int64_t *, size_t, void **))(
            context, 0, dims, rank, &output) ||
        CALL(GET_TENSOR_MUTABLE_DATA, Status (*)(const void *, void **))(output, (void **)&y))
        abort();
    for (size_t i = 0; i < count; i++) {
        if (x[i] == POISON)
            abort(); /* the poison: a real crash of the process running ONNX Runtime */
        y[i] = x[i];
    }
}

static CustomOp op = {
    1, create_kernel, name, provider, float_type, one, float_type, one, compute, destroy,
    zero_at, zero_at, zero_at, one_int, one_int, one_int, one_int, NULL, NULL, NULL,
    one_int, last_version, no_pairs, release_pairs, no_pairs, release_pairs,
};

Status RegisterCustomOps(void *options, const ApiBase *base) {
    void *domain = NULL;
    Status status;
    api = base->GetApi(1);
    if ((status = CALL(CREATE_CUSTOM_OP_DOMAIN, Status (*)(const char *, void **))("modelport.test", &domain)))
        return status;
    if ((status = CALL(CUSTOM_OP_DOMAIN_ADD, Status (*)(void *, CustomOp *))(domain, &op)))
        return status;
    return CALL(ADD_CUSTOM_OP_DOMAIN, Status (*)(void *, void *))(options, domain);
}
