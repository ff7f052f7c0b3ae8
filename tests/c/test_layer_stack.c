/*
 * The merged view of a pulled image through the C ABI (msb_layer_stack): stat, readlink,
 * read_dir, xattrs and host paths on the standard fixture (an overwritten file, a whiteout,
 * an opaque directory, a setuid file, symlinks, a device, hardlinks, an xattr), stacks
 * opened from a result and from index paths, lifetimes of stacks and lists, missing and
 * corrupt indexes, several threads sharing one stack, and NULL/invalid arguments for every
 * new function.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static testkit kit;
static env shared;              /* the cache and registry every test uses */
static msb_pull_result *result; /* fixtures/standard:gzip, with its index */
static char ref[512];

static bool setup(void) {
    if (!testkit_start(&kit, NULL)) return false;
    bool ok = env_open(&shared);
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    ok = ok && msb_registry_pull(shared.registry, ref, shared.options, NULL, NULL, &result) ==
                   MSB_STATUS_OK;
    if (!ok) fprintf(stderr, "setup: %s\n", msb_last_error_message());
    return ok;
}

static void teardown(void) {
    msb_pull_result_free(result);
    env_close(&shared);
    testkit_stop(&kit);
}

/* A stack over the shared result; free it with msb_layer_stack_free. */
static msb_layer_stack *open_stack(void) {
    msb_layer_stack *s = NULL;
    msb_status st = msb_layer_stack_open(result, &s);
    if (st != MSB_STATUS_OK) {
        fprintf(stderr, "  msb_layer_stack_open: %s: %s\n", msb_status_name(st),
                msb_last_error_message());
        return NULL;
    }
    return s;
}

/* The names of a listing, joined with ',' into buf. */
static bool list_names(const msb_dir_list *list, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    if (msb_dir_list_len(list, &len) != MSB_STATUS_OK) return false;
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        msb_str name = {NULL, 0};
        if (msb_dir_list_name(list, i, &name) != MSB_STATUS_OK || name.ptr == NULL) return false;
        int w = snprintf(buf + used, n - used, "%s%.*s", i ? "," : "", (int)name.len, name.ptr);
        if (w < 0 || (size_t)w >= n - used) return false;
        used += (size_t)w;
    }
    return true;
}

static bool read_file_eq(const char *path, const char *want) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "  cannot open %s\n", path);
        return false;
    }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "  %s holds \"%s\", want \"%s\"\n", path, buf, want);
        return false;
    }
    return true;
}

static void test_overwritten_file_comes_from_the_upper_layer(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    size_t layers = 0;
    CHECK_STATUS(msb_layer_stack_layer_count(s, &layers), MSB_STATUS_OK);
    CHECK(layers == 3);
    msb_stat st;
    memset(&st, 0, sizeof st);
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/overwritten", &st), MSB_STATUS_OK);
    CHECK(st.size == 13);
    CHECK(st.layer == 1);
    CHECK(st.kind == MSB_ENTRY_KIND_FILE);
    CHECK(S_ISREG(st.mode) && (st.mode & 07777) == 0644);
    CHECK(st.nlink == 1 && st.uid == 0 && st.gid == 0);
    CHECK(st.flags == 0);
    /* Leading and trailing slashes do not matter. */
    msb_stat abs;
    memset(&abs, 0xff, sizeof abs);
    CHECK_STATUS(msb_layer_stack_stat(s, "/etc/overwritten", &abs), MSB_STATUS_OK);
    CHECK(memcmp(&st, &abs, sizeof st) == 0);
    CHECK_STATUS(msb_layer_stack_stat(s, "//etc/overwritten/", &abs), MSB_STATUS_OK);
    CHECK(memcmp(&st, &abs, sizeof st) == 0);
    /* The owned file keeps its owner; the root is a directory from some layer. */
    CHECK_STATUS(msb_layer_stack_stat(s, "home/user/owned", &st), MSB_STATUS_OK);
    CHECK(st.uid == 1000 && st.gid == 1000 && st.layer == 0);
    CHECK_STATUS(msb_layer_stack_stat(s, "/", &st), MSB_STATUS_OK);
    CHECK(st.kind == MSB_ENTRY_KIND_DIR && S_ISDIR(st.mode));
    CHECK_STATUS(msb_layer_stack_stat(s, "", &st), MSB_STATUS_OK);
    CHECK(st.kind == MSB_ENTRY_KIND_DIR);
    CHECK_STATUS(msb_layer_stack_stat(s, "tmp", &st), MSB_STATUS_OK);
    CHECK(st.mode == 041777);
    msb_layer_stack_free(s);
}

static void test_whiteout_hides_a_file(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_stat st;
    memset(&st, 0x5a, sizeof st);
    msb_stat before = st;
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/to-delete", &st), MSB_STATUS_NOT_FOUND);
    CHECK(message_has("/etc/to-delete: no such file or directory"));
    CHECK(memcmp(&st, &before, sizeof st) == 0); /* left unchanged */
    CHECK(strcmp(msb_status_name(MSB_STATUS_NOT_FOUND), "MSB_STATUS_NOT_FOUND") == 0);
    CHECK(MSB_STATUS_NOT_FOUND == 15);
    /* Every lookup agrees, and whiteout files never show up. */
    char *str = SENTINEL;
    CHECK_STATUS(msb_layer_stack_readlink(s, "etc/to-delete", &str), MSB_STATUS_NOT_FOUND);
    CHECK(str == NULL);
    str = SENTINEL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "/etc/to-delete", &str), MSB_STATUS_NOT_FOUND);
    CHECK(str == NULL);
    msb_bytes b = {SENTINEL, 7};
    CHECK_STATUS(msb_layer_stack_get_xattr(s, "etc/to-delete", "user.test", &b),
                 MSB_STATUS_NOT_FOUND);
    CHECK(b.ptr == NULL && b.len == 0);
    b = (msb_bytes){SENTINEL, 7};
    CHECK_STATUS(msb_layer_stack_list_xattrs(s, "etc/to-delete", &b), MSB_STATUS_NOT_FOUND);
    CHECK(b.ptr == NULL && b.len == 0);
    msb_dir_list *list = SENTINEL;
    CHECK_STATUS(msb_layer_stack_read_dir(s, "etc/to-delete", &list), MSB_STATUS_NOT_FOUND);
    CHECK(list == NULL);
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/.wh.to-delete", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "no/such/path", &st), MSB_STATUS_NOT_FOUND);
    /* A file is not a directory: nothing below it. */
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/overwritten/x", &st), MSB_STATUS_NOT_FOUND);
    /* Paths are bytes: not UTF-8 is simply not found, and non-canonical paths never are. */
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/\xff\xfe", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "etc//overwritten", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "etc/./overwritten", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "usr/../etc/overwritten", &st), MSB_STATUS_NOT_FOUND);

    char names[512];
    CHECK_STATUS(msb_layer_stack_read_dir(s, "/etc/", &list), MSB_STATUS_OK);
    CHECK(list_names(list, names, sizeof names));
    CHECK(strcmp(names, "abs-link,overwritten") == 0);
    if (strcmp(names, "abs-link,overwritten") != 0) fprintf(stderr, "  etc: %s\n", names);
    msb_dir_list_free(list);
    msb_layer_stack_free(s);
}

static void test_opaque_directory_hides_the_lower_layers(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_stat st;
    CHECK_STATUS(msb_layer_stack_stat(s, "opaque/old-a", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "opaque/old-b", &st), MSB_STATUS_NOT_FOUND);
    CHECK_STATUS(msb_layer_stack_stat(s, "opaque", &st), MSB_STATUS_OK);
    CHECK(st.kind == MSB_ENTRY_KIND_DIR && st.layer == 1);
    CHECK((st.flags & MSB_ENTRY_FLAG_OPAQUE) != 0);

    msb_dir_list *list = NULL;
    REQUIRE_OK(msb_layer_stack_read_dir(s, "opaque", &list));
    size_t n = 0;
    CHECK_STATUS(msb_dir_list_len(list, &n), MSB_STATUS_OK);
    CHECK(n == 1);
    msb_str name = {NULL, 0};
    CHECK_STATUS(msb_dir_list_name(list, 0, &name), MSB_STATUS_OK);
    CHECK(name.len == 3 && memcmp(name.ptr, "new", 3) == 0);
    msb_stat item, direct;
    CHECK_STATUS(msb_dir_list_stat(list, 0, &item), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_stat(s, "opaque/new", &direct), MSB_STATUS_OK);
    CHECK(memcmp(&item, &direct, sizeof item) == 0);
    CHECK(item.size == 13 && item.layer == 1 && item.kind == MSB_ENTRY_KIND_FILE);
    /* Out of range: INVALID_ARGUMENT, the name reset to the empty string. */
    name.ptr = "x";
    name.len = 1;
    CHECK_STATUS(msb_dir_list_name(list, 1, &name), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(message_has("out of range"));
    CHECK(name.ptr != NULL && name.len == 0);
    CHECK_STATUS(msb_dir_list_stat(list, 1, &item), MSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(msb_dir_list_stat(list, (size_t)-1, &item), MSB_STATUS_INVALID_ARGUMENT);
    msb_dir_list_free(list);
    msb_layer_stack_free(s);
}

static void test_modes_symlinks_devices(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_stat st;
    CHECK_STATUS(msb_layer_stack_stat(s, "usr/bin/suid", &st), MSB_STATUS_OK);
    CHECK(st.mode == 0104755);
    CHECK(st.kind == MSB_ENTRY_KIND_FILE && st.layer == 0);
    CHECK_STATUS(msb_layer_stack_stat(s, "root", &st), MSB_STATUS_OK);
    CHECK(st.mode == 040700);

    CHECK_STATUS(msb_layer_stack_stat(s, "etc/abs-link", &st), MSB_STATUS_OK);
    CHECK(st.kind == MSB_ENTRY_KIND_SYMLINK && S_ISLNK(st.mode));
    CHECK(st.size == strlen("/usr/bin/tool"));
    char *target = NULL;
    CHECK_STATUS(msb_layer_stack_readlink(s, "etc/abs-link", &target), MSB_STATUS_OK);
    CHECK(take_string_eq(target, "/usr/bin/tool"));
    target = NULL;
    CHECK_STATUS(msb_layer_stack_readlink(s, "/usr/bin/rel-link", &target), MSB_STATUS_OK);
    CHECK(take_string_eq(target, "tool"));
    target = SENTINEL;
    CHECK_STATUS(msb_layer_stack_readlink(s, "usr/bin/tool", &target),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK(target == NULL);
    CHECK(message_has("not a symbolic link"));

    CHECK_STATUS(msb_layer_stack_stat(s, "dev/null", &st), MSB_STATUS_OK);
    CHECK(st.rdev == ((1u << 8) | 3u));
    CHECK(st.kind == MSB_ENTRY_KIND_CHAR_DEVICE && S_ISCHR(st.mode));
    CHECK((st.mode & 07777) == 0666 && st.size == 0);
    CHECK_STATUS(msb_layer_stack_stat(s, "dev/fifo", &st), MSB_STATUS_OK);
    CHECK(st.kind == MSB_ENTRY_KIND_FIFO && S_ISFIFO(st.mode) && st.rdev == 0);
    CHECK_STATUS(msb_layer_stack_stat(s, "data/big-3m", &st), MSB_STATUS_OK);
    CHECK(st.size == 3u * 1024 * 1024);
    CHECK_STATUS(msb_layer_stack_stat(s, "data/empty", &st), MSB_STATUS_OK);
    CHECK(st.size == 0 && st.kind == MSB_ENTRY_KIND_FILE);
    msb_layer_stack_free(s);
}

static void test_hardlinks_share_an_inode(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_stat a, b, other;
    CHECK_STATUS(msb_layer_stack_stat(s, "usr/bin/tool", &a), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_stat(s, "usr/bin/tool-hardlink", &b), MSB_STATUS_OK);
    CHECK(a.inode != 0 && a.inode == b.inode);
    CHECK(a.nlink == 2 && b.nlink == 2);
    CHECK((a.flags & MSB_ENTRY_FLAG_HARDLINK) && (b.flags & MSB_ENTRY_FLAG_HARDLINK));
    CHECK(a.size == b.size && a.mode == b.mode && a.mode == 0100755);
    CHECK_STATUS(msb_layer_stack_stat(s, "usr/bin/suid", &other), MSB_STATUS_OK);
    CHECK(other.inode != a.inode && other.nlink == 1);
    CHECK((other.flags & MSB_ENTRY_FLAG_HARDLINK) == 0);
    /* The host agrees: the two host paths are one file. */
    char *pa = NULL, *pb = NULL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "usr/bin/tool", &pa), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_host_path(s, "usr/bin/tool-hardlink", &pb), MSB_STATUS_OK);
    struct stat ha, hb;
    CHECK(pa != NULL && pb != NULL && stat(pa, &ha) == 0 && stat(pb, &hb) == 0);
    if (pa != NULL && pb != NULL) CHECK(ha.st_ino == hb.st_ino && ha.st_ino == a.inode);
    msb_string_free(pa);
    msb_string_free(pb);
    msb_layer_stack_free(s);
}

static void test_xattrs(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_bytes v = {NULL, 0};
    CHECK_STATUS(msb_layer_stack_get_xattr(s, "app/xattr-file", "user.test", &v), MSB_STATUS_OK);
    CHECK(v.len == 5 && v.ptr != NULL && memcmp(v.ptr, "hello", 5) == 0);
    msb_bytes_free(v);
    v = (msb_bytes){SENTINEL, 3};
    CHECK_STATUS(msb_layer_stack_get_xattr(s, "/app/xattr-file", "user.nope", &v),
                 MSB_STATUS_NOT_FOUND);
    CHECK(v.ptr == NULL && v.len == 0);
    CHECK(message_has("no extended attribute user.nope"));

    msb_bytes names = {NULL, 0};
    CHECK_STATUS(msb_layer_stack_list_xattrs(s, "app/xattr-file", &names), MSB_STATUS_OK);
    CHECK(names.len == sizeof "user.test" && names.ptr != NULL &&
          memcmp(names.ptr, "user.test", sizeof "user.test") == 0);
    msb_bytes_free(names);
    names = (msb_bytes){SENTINEL, 9};
    CHECK_STATUS(msb_layer_stack_list_xattrs(s, "app/hello.txt", &names), MSB_STATUS_OK);
    CHECK(names.ptr == NULL && names.len == 0); /* none */
    msb_bytes_free(names);

    msb_stat st;
    CHECK_STATUS(msb_layer_stack_stat(s, "app/xattr-file", &st), MSB_STATUS_OK);
    CHECK((st.flags & MSB_ENTRY_FLAG_HAS_XATTRS) != 0 && st.layer == 2);
    CHECK_STATUS(msb_layer_stack_stat(s, "app/hello.txt", &st), MSB_STATUS_OK);
    CHECK((st.flags & MSB_ENTRY_FLAG_HAS_XATTRS) == 0);
    msb_layer_stack_free(s);
}

static void test_host_paths_are_readable(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    char *top = NULL, *mid = NULL;
    REQUIRE_OK(msb_pull_result_layer_path(result, 2, &top));
    REQUIRE_OK(msb_pull_result_layer_path(result, 1, &mid));

    char *p = NULL;
    char want[PATH_MAX];
    CHECK_STATUS(msb_layer_stack_host_path(s, "app/hello.txt", &p), MSB_STATUS_OK);
    snprintf(want, sizeof want, "%s/app/hello.txt", top);
    CHECK(p != NULL && strcmp(p, want) == 0);
    CHECK(p != NULL && read_file_eq(p, "hello from layer 3\n"));
    msb_string_free(p);
    p = NULL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "/app/hello.txt", &p), MSB_STATUS_OK);
    CHECK(take_string_eq(p, want));

    /* The overwritten file's content is the upper layer's. */
    p = NULL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "/etc/overwritten", &p), MSB_STATUS_OK);
    snprintf(want, sizeof want, "%s/etc/overwritten", mid);
    CHECK(p != NULL && strcmp(p, want) == 0);
    CHECK(p != NULL && read_file_eq(p, "from layer 2\n"));
    msb_string_free(p);

    /* A directory's host path is its metadata layer's tree; the root's, a layer tree. */
    p = NULL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "app", &p), MSB_STATUS_OK);
    CHECK(p != NULL && is_dir(p));
    msb_string_free(p);
    p = NULL;
    CHECK_STATUS(msb_layer_stack_host_path(s, "/", &p), MSB_STATUS_OK);
    CHECK(p != NULL && is_dir(p) && strstr(p, "/layers/sha256/") != NULL);
    msb_string_free(p);
    msb_string_free(top);
    msb_string_free(mid);
    msb_layer_stack_free(s);
}

static void test_root_listing(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_dir_list *list = NULL;
    REQUIRE_OK(msb_layer_stack_read_dir(s, "/", &list));
    char names[1024];
    CHECK(list_names(list, names, sizeof names));
    const char *want = "app,data,dev,etc,home,long,opaque,root,tmp,usr";
    if (strcmp(names, want) != 0) fprintf(stderr, "  root: %s\n", names);
    CHECK(strcmp(names, want) == 0);
    /* Each item's stat is the stat of its path. */
    size_t n = 0;
    CHECK_STATUS(msb_dir_list_len(list, &n), MSB_STATUS_OK);
    for (size_t i = 0; i < n; i++) {
        msb_str name;
        msb_stat a, b;
        char path[256];
        CHECK_STATUS(msb_dir_list_name(list, i, &name), MSB_STATUS_OK);
        CHECK_STATUS(msb_dir_list_stat(list, i, &a), MSB_STATUS_OK);
        snprintf(path, sizeof path, "/%.*s", (int)name.len, name.ptr);
        CHECK_STATUS(msb_layer_stack_stat(s, path, &b), MSB_STATUS_OK);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
        CHECK(a.kind == MSB_ENTRY_KIND_DIR);
    }
    msb_dir_list_free(list);

    list = SENTINEL;
    CHECK_STATUS(msb_layer_stack_read_dir(s, "etc/overwritten", &list),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK(list == NULL);
    CHECK(message_has("not a directory"));
    list = SENTINEL;
    CHECK_STATUS(msb_layer_stack_read_dir(s, "nowhere", &list), MSB_STATUS_NOT_FOUND);
    CHECK(list == NULL);
    CHECK_STATUS(msb_layer_stack_read_dir(s, "usr/bin", &list), MSB_STATUS_OK);
    CHECK(list_names(list, names, sizeof names));
    CHECK(strcmp(names, "rel-link,suid,tool,tool-hardlink") == 0);
    msb_dir_list_free(list);
    msb_layer_stack_free(s);
}

/* The index paths of the shared result: <layer>/../index. */
static size_t index_paths(char paths[][PATH_MAX], size_t max) {
    size_t n = 0;
    if (msb_pull_result_layer_count(result, &n) != MSB_STATUS_OK || n > max) return 0;
    for (size_t i = 0; i < n; i++) {
        char *layer = NULL;
        if (msb_pull_result_layer_path(result, i, &layer) != MSB_STATUS_OK) return 0;
        char *slash = strrchr(layer, '/');
        if (slash != NULL) *slash = '\0';
        snprintf(paths[i], PATH_MAX, "%s/index", layer);
        msb_string_free(layer);
    }
    return n;
}

static void test_open_paths_matches_open(void) {
    char paths[3][PATH_MAX];
    REQUIRE(index_paths(paths, 3) == 3);
    const char *ptrs[3] = {paths[0], paths[1], paths[2]};
    msb_layer_stack *a = open_stack();
    msb_layer_stack *b = NULL;
    CHECK_STATUS(msb_layer_stack_open_paths(ptrs, 3, &b), MSB_STATUS_OK);
    if (a == NULL || b == NULL) {
        msb_layer_stack_free(a);
        msb_layer_stack_free(b);
        REQUIRE(false);
    }
    size_t layers = 0;
    CHECK_STATUS(msb_layer_stack_layer_count(b, &layers), MSB_STATUS_OK);
    CHECK(layers == 3);
    const char *check[] = {"/", "etc/overwritten", "usr/bin/tool", "dev/null", "opaque/new",
                           "app/hello.txt", "etc/abs-link"};
    for (size_t i = 0; i < sizeof check / sizeof check[0]; i++) {
        msb_stat sa, sb;
        CHECK_STATUS(msb_layer_stack_stat(a, check[i], &sa), MSB_STATUS_OK);
        CHECK_STATUS(msb_layer_stack_stat(b, check[i], &sb), MSB_STATUS_OK);
        CHECK(memcmp(&sa, &sb, sizeof sa) == 0);
        char *ha = NULL, *hb = NULL;
        CHECK_STATUS(msb_layer_stack_host_path(a, check[i], &ha), MSB_STATUS_OK);
        CHECK_STATUS(msb_layer_stack_host_path(b, check[i], &hb), MSB_STATUS_OK);
        CHECK(ha != NULL && hb != NULL && strcmp(ha, hb) == 0);
        msb_string_free(ha);
        msb_string_free(hb);
    }
    msb_stat st;
    CHECK_STATUS(msb_layer_stack_stat(b, "etc/to-delete", &st), MSB_STATUS_NOT_FOUND);

    /* Only the bottom layer: the deleted file is back, the overwritten one is old. */
    msb_layer_stack *bottom = NULL;
    CHECK_STATUS(msb_layer_stack_open_paths(ptrs, 1, &bottom), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_stat(bottom, "etc/to-delete", &st), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_stat(bottom, "etc/overwritten", &st), MSB_STATUS_OK);
    CHECK(st.size == strlen("from layer 1\n") && st.layer == 0);
    CHECK_STATUS(msb_layer_stack_stat(bottom, "app", &st), MSB_STATUS_NOT_FOUND);
    msb_layer_stack_free(bottom);

    /* No layers: nothing at all. */
    msb_layer_stack *empty = NULL;
    CHECK_STATUS(msb_layer_stack_open_paths(ptrs, 0, &empty), MSB_STATUS_OK);
    CHECK_STATUS(msb_layer_stack_stat(empty, "/", &st), MSB_STATUS_NOT_FOUND);
    msb_layer_stack_free(empty);
    msb_layer_stack_free(a);
    msb_layer_stack_free(b);
}

static void test_lifetimes(void) {
    /* The stack keeps what it needs from the result; a list from the stack. */
    msb_pull_options *options = NULL;
    REQUIRE_OK(msb_pull_options_new(&options));
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(shared.registry, ref, options, NULL, NULL, &r), MSB_STATUS_OK);
    msb_pull_options_free(options);
    REQUIRE(r != NULL);
    msb_layer_stack *s = NULL;
    CHECK_STATUS(msb_layer_stack_open(r, &s), MSB_STATUS_OK);
    msb_pull_result_free(r);
    REQUIRE(s != NULL);
    msb_stat st;
    CHECK_STATUS(msb_layer_stack_stat(s, "app/hello.txt", &st), MSB_STATUS_OK);
    msb_dir_list *list = NULL;
    CHECK_STATUS(msb_layer_stack_read_dir(s, "app", &list), MSB_STATUS_OK);
    msb_layer_stack_free(s);
    REQUIRE(list != NULL);
    char names[256];
    CHECK(list_names(list, names, sizeof names));
    CHECK(strcmp(names, "hello.txt,xattr-file") == 0);
    CHECK_STATUS(msb_dir_list_stat(list, 1, &st), MSB_STATUS_OK);
    CHECK(st.size == strlen("has an xattr\n"));
    msb_dir_list_free(list);
}

static void test_missing_and_corrupt_indexes(void) {
    char dir[PATH_MAX];
    REQUIRE(tmpdir_new(dir));
    msb_cache *c = NULL;
    msb_platform *p = NULL;
    msb_registry *reg = NULL;
    msb_pull_options *o = NULL;
    msb_pull_result *r = NULL;
    bool ok = msb_cache_open(dir, &c) == MSB_STATUS_OK &&
              msb_platform_parse("linux/amd64", &p) == MSB_STATUS_OK &&
              msb_registry_new(c, p, &reg) == MSB_STATUS_OK &&
              msb_pull_options_new(&o) == MSB_STATUS_OK &&
              msb_pull_options_set_build_index(o, false) == MSB_STATUS_OK;
    CHECK(ok);
    if (ok) CHECK_STATUS(msb_registry_pull(reg, ref, o, NULL, NULL, &r), MSB_STATUS_OK);
    if (r != NULL) {
        msb_layer_stack *s = SENTINEL;
        CHECK_STATUS(msb_layer_stack_open(r, &s), MSB_STATUS_IO);
        CHECK(s == NULL);
        CHECK(message_has("layer 0"));
        CHECK(message_has("build_index"));
    }

    char bad[PATH_MAX + 16], missing[PATH_MAX + 16];
    snprintf(bad, sizeof bad, "%s/garbage", dir);
    snprintf(missing, sizeof missing, "%s/missing/index", dir);
    FILE *f = fopen(bad, "wb");
    CHECK(f != NULL);
    if (f != NULL) {
        for (int i = 0; i < 64; i++) fputs("not an index ", f);
        fclose(f);
    }
    const char *one[1] = {bad};
    msb_layer_stack *s = SENTINEL;
    CHECK_STATUS(msb_layer_stack_open_paths(one, 1, &s), MSB_STATUS_IO);
    CHECK(s == NULL);
    CHECK(message_has("not a layer index"));
    one[0] = missing;
    s = SENTINEL;
    CHECK_STATUS(msb_layer_stack_open_paths(one, 1, &s), MSB_STATUS_IO);
    CHECK(s == NULL);
    CHECK(message_has("missing/index"));
    one[0] = dir; /* a directory */
    CHECK_STATUS(msb_layer_stack_open_paths(one, 1, &s), MSB_STATUS_IO);
    CHECK(s == NULL);

    msb_pull_result_free(r);
    msb_pull_options_free(o);
    msb_registry_free(reg);
    msb_platform_free(p);
    msb_cache_free(c);
    tmpdir_remove(dir);
}

typedef struct reader {
    msb_layer_stack *stack;
    int failures;
} reader;

static void *read_many(void *arg) {
    reader *rd = arg;
    for (int i = 0; i < 100; i++) {
        msb_stat st;
        if (msb_layer_stack_stat(rd->stack, "usr/bin/tool", &st) != MSB_STATUS_OK ||
            st.nlink != 2)
            rd->failures++;
        if (msb_layer_stack_stat(rd->stack, "etc/to-delete", &st) != MSB_STATUS_NOT_FOUND ||
            strstr(msb_last_error_message(), "to-delete") == NULL)
            rd->failures++;
        char *p = NULL;
        if (msb_layer_stack_host_path(rd->stack, "app/hello.txt", &p) != MSB_STATUS_OK)
            rd->failures++;
        msb_string_free(p);
        msb_dir_list *l = NULL;
        size_t n = 0;
        if (msb_layer_stack_read_dir(rd->stack, "etc", &l) != MSB_STATUS_OK ||
            msb_dir_list_len(l, &n) != MSB_STATUS_OK || n != 2)
            rd->failures++;
        msb_dir_list_free(l);
    }
    return NULL;
}

static void test_threads_share_one_stack(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    reader readers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        readers[i] = (reader){s, 0};
        CHECK(pthread_create(&threads[i], NULL, read_many, &readers[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(readers[i].failures == 0);
    }
    msb_layer_stack_free(s);
}

static void test_null_arguments(void) {
    msb_layer_stack *s = open_stack();
    REQUIRE(s != NULL);
    msb_layer_stack *out = SENTINEL;
    NULL_ARG(msb_layer_stack_open(NULL, &out), "result");
    CHECK(out == NULL);
    NULL_ARG(msb_layer_stack_open(result, NULL), "out");
    const char *paths[2] = {"/nonexistent/index", NULL};
    out = SENTINEL;
    NULL_ARG(msb_layer_stack_open_paths(NULL, 0, &out), "index_paths");
    CHECK(out == NULL);
    NULL_ARG(msb_layer_stack_open_paths(paths, 1, NULL), "out");
    out = SENTINEL;
    NULL_ARG(msb_layer_stack_open_paths(paths + 1, 1, &out), "index_paths[0]");
    CHECK(out == NULL);
    /* Every pointer is checked before any index is opened. */
    const char *paths2[2] = {"/nonexistent/index", NULL};
    CHECK_STATUS(msb_layer_stack_open_paths(paths2, 2, &out), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(message_has("index_paths[1] is NULL"));

    size_t n = 0;
    NULL_ARG(msb_layer_stack_layer_count(NULL, &n), "stack");
    NULL_ARG(msb_layer_stack_layer_count(s, NULL), "out");

    msb_stat st;
    NULL_ARG(msb_layer_stack_stat(NULL, "etc", &st), "stack");
    NULL_ARG(msb_layer_stack_stat(s, NULL, &st), "path");
    NULL_ARG(msb_layer_stack_stat(s, "etc", NULL), "out");

    char *str = SENTINEL;
    NULL_ARG(msb_layer_stack_readlink(NULL, "etc/abs-link", &str), "stack");
    CHECK(str == NULL);
    str = SENTINEL;
    NULL_ARG(msb_layer_stack_readlink(s, NULL, &str), "path");
    CHECK(str == NULL);
    NULL_ARG(msb_layer_stack_readlink(s, "etc/abs-link", NULL), "out");

    str = SENTINEL;
    NULL_ARG(msb_layer_stack_host_path(NULL, "etc", &str), "stack");
    CHECK(str == NULL);
    str = SENTINEL;
    NULL_ARG(msb_layer_stack_host_path(s, NULL, &str), "path");
    CHECK(str == NULL);
    NULL_ARG(msb_layer_stack_host_path(s, "etc", NULL), "out");

    msb_dir_list *list = SENTINEL;
    NULL_ARG(msb_layer_stack_read_dir(NULL, "etc", &list), "stack");
    CHECK(list == NULL);
    list = SENTINEL;
    NULL_ARG(msb_layer_stack_read_dir(s, NULL, &list), "path");
    CHECK(list == NULL);
    NULL_ARG(msb_layer_stack_read_dir(s, "etc", NULL), "out");

    msb_bytes b = {SENTINEL, 1};
    NULL_ARG(msb_layer_stack_get_xattr(NULL, "app/xattr-file", "user.test", &b), "stack");
    CHECK(b.ptr == NULL && b.len == 0);
    b = (msb_bytes){SENTINEL, 1};
    NULL_ARG(msb_layer_stack_get_xattr(s, NULL, "user.test", &b), "path");
    CHECK(b.ptr == NULL && b.len == 0);
    b = (msb_bytes){SENTINEL, 1};
    NULL_ARG(msb_layer_stack_get_xattr(s, "app/xattr-file", NULL, &b), "name");
    CHECK(b.ptr == NULL && b.len == 0);
    NULL_ARG(msb_layer_stack_get_xattr(s, "app/xattr-file", "user.test", NULL), "out");
    b = (msb_bytes){SENTINEL, 1};
    NULL_ARG(msb_layer_stack_list_xattrs(NULL, "app/xattr-file", &b), "stack");
    CHECK(b.ptr == NULL && b.len == 0);
    b = (msb_bytes){SENTINEL, 1};
    NULL_ARG(msb_layer_stack_list_xattrs(s, NULL, &b), "path");
    CHECK(b.ptr == NULL && b.len == 0);
    NULL_ARG(msb_layer_stack_list_xattrs(s, "app/xattr-file", NULL), "out");

    REQUIRE_OK(msb_layer_stack_read_dir(s, "etc", &list));
    msb_str name = {"x", 1};
    NULL_ARG(msb_dir_list_len(NULL, &n), "list");
    NULL_ARG(msb_dir_list_len(list, NULL), "out");
    NULL_ARG(msb_dir_list_name(NULL, 0, &name), "list");
    CHECK(name.ptr != NULL && name.len == 0);
    NULL_ARG(msb_dir_list_name(list, 0, NULL), "out");
    NULL_ARG(msb_dir_list_stat(NULL, 0, &st), "list");
    NULL_ARG(msb_dir_list_stat(list, 0, NULL), "out");
    msb_dir_list_free(list);

    /* Free functions accept NULL. */
    msb_layer_stack_free(NULL);
    msb_dir_list_free(NULL);
    msb_bytes_free((msb_bytes){NULL, 0});
    msb_layer_stack_free(s);
}

int main(void) {
    if (!setup()) {
        teardown();
        return tf_setup_failed("test_layer_stack", "setup");
    }
    RUN(test_overwritten_file_comes_from_the_upper_layer);
    RUN(test_whiteout_hides_a_file);
    RUN(test_opaque_directory_hides_the_lower_layers);
    RUN(test_modes_symlinks_devices);
    RUN(test_hardlinks_share_an_inode);
    RUN(test_xattrs);
    RUN(test_host_paths_are_readable);
    RUN(test_root_listing);
    RUN(test_open_paths_matches_open);
    RUN(test_lifetimes);
    RUN(test_missing_and_corrupt_indexes);
    RUN(test_threads_share_one_stack);
    RUN(test_null_arguments);
    teardown();
    return tf_summary("test_layer_stack");
}
