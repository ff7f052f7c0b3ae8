#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- runner ---- */

static int passed, failed, current_failures;
static const char *current_name = "?";

void tf_fail(const char *file, int line, const char *what) {
    current_failures++;
    fprintf(stderr, "  %s:%d: %s: check failed: %s\n", file, line, current_name, what);
}

void tf_fail_status(const char *file, int line, const char *call, msb_status got,
                    msb_status want) {
    current_failures++;
    fprintf(stderr, "  %s:%d: %s: %s\n    returned %s, expected %s\n    message: %s\n", file,
            line, current_name, call, msb_status_name(got), msb_status_name(want),
            msb_last_error_message());
}

int tf_current_failures(void) { return current_failures; }

void tf_run(const char *name, void (*test)(void)) {
    current_name = name;
    current_failures = 0;
    test();
    if (current_failures == 0) {
        passed++;
        printf("ok - %s\n", name);
    } else {
        failed++;
        printf("not ok - %s\n", name);
    }
    fflush(stdout);
}

int tf_summary(const char *program) {
    printf("# %s: %d passed, %d failed\n", program, passed, failed);
    return failed == 0 ? 0 : 1;
}

int tf_setup_failed(const char *program, const char *what) {
    printf("not ok - %s\n# %s: 0 passed, 1 failed\n", what, program);
    return 1;
}

/* ---- the loopback registry ---- */

bool testkit_start(testkit *kit, const char *basic) {
    memset(kit, 0, sizeof *kit);
    kit->pid = -1;
    kit->stdin_fd = -1;
    const char *bin = getenv("MSB_TESTKIT");
    if (bin == NULL) bin = "target/debug/msbimage-testkit";

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[8];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "serve";
    argv[n++] = "--push-fixtures";
    if (basic != NULL) {
        argv[n++] = "--basic";
        argv[n++] = (char *)basic;
    }
    argv[n] = NULL;
    int rc = posix_spawn(&kit->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        fprintf(stderr, "cannot start %s: %s\n", bin, strerror(rc));
        close(in[1]);
        close(out[0]);
        kit->pid = -1;
        return false;
    }
    kit->stdin_fd = in[1];

    size_t len = 0;
    while (len + 1 < sizeof kit->line) {
        ssize_t r = read(out[0], kit->line + len, 1);
        if (r <= 0) break;
        if (kit->line[len] == '\n') break;
        len++;
    }
    kit->line[len] = '\0';
    close(out[0]);

    const char *key = "\"host\":\"";
    const char *h = strstr(kit->line, key);
    if (h == NULL) {
        fprintf(stderr, "testkit printed no host: %s\n", kit->line);
        testkit_stop(kit);
        return false;
    }
    h += strlen(key);
    size_t i = 0;
    while (h[i] != '\0' && h[i] != '"' && i + 1 < sizeof kit->host) {
        kit->host[i] = h[i];
        i++;
    }
    kit->host[i] = '\0';
    return true;
}

void testkit_stop(testkit *kit) {
    if (kit->stdin_fd >= 0) close(kit->stdin_fd);
    kit->stdin_fd = -1;
    if (kit->pid > 0) {
        int st;
        while (waitpid(kit->pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    kit->pid = -1;
}

void testkit_ref(const testkit *kit, const char *repo_tag, char *out, size_t n) {
    snprintf(out, n, "%s/%s", kit->host, repo_tag);
}

/* ---- a cache with a registry ---- */

bool env_open(env *v) {
    memset(v, 0, sizeof *v);
    if (!tmpdir_new(v->dir)) return false;
    return msb_cache_open(v->dir, &v->cache) == MSB_STATUS_OK &&
           msb_platform_parse("linux/amd64", &v->platform) == MSB_STATUS_OK &&
           msb_registry_new(v->cache, v->platform, &v->registry) == MSB_STATUS_OK &&
           msb_pull_options_new(&v->options) == MSB_STATUS_OK;
}

void env_close(env *v) {
    msb_pull_options_free(v->options);
    msb_registry_free(v->registry);
    msb_platform_free(v->platform);
    msb_cache_free(v->cache);
    if (v->dir[0] != '\0') tmpdir_remove(v->dir);
}

/* ---- error messages ---- */

int tf_sentinel_storage;

bool message_has(const char *needle) {
    const char *m = msb_last_error_message();
    if (m != NULL && strstr(m, needle) != NULL) return true;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", m ? m : "(null)", needle);
    return false;
}

bool contains(const char *json, const char *needle) {
    if (json != NULL && strstr(json, needle) != NULL) return true;
    fprintf(stderr, "  \"%s\" not in %s\n", needle, json ? json : "(null)");
    return false;
}

/* ---- files ---- */

bool tmpdir_new(char path[PATH_MAX]) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    snprintf(path, PATH_MAX, "%s/msb-ctest-XXXXXX", base);
    return mkdtemp(path) != NULL;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D) {
        chmod(path, 0700);
        return rmdir(path) == 0 ? 0 : 0;
    }
    unlink(path);
    return 0;
}

static int make_writable(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)ftw;
    if (flag == FTW_D) chmod(path, (st->st_mode & 07777) | 0700);
    return 0;
}

void tmpdir_remove(const char *path) {
    nftw(path, make_writable, 16, FTW_PHYS);
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool check_cache_consistent(const char *cache_dir, int wait_ms) {
    char path[PATH_MAX];
    bool ok = true;

    snprintf(path, sizeof path, "%s/tmp", cache_dir);
    int left = wait_ms;
    while (dir_entries(path) > 0 && left > 0) {
        sleep_ms(50);
        left -= 50;
    }
    if (dir_entries(path) != 0) {
        fprintf(stderr, "  %s is not empty (%d entries)\n", path, dir_entries(path));
        CHECK(!"tmp/ is empty");
        ok = false;
    }

    snprintf(path, sizeof path, "%s/layers/sha256", cache_dir);
    DIR *d = opendir(path);
    if (d == NULL) return ok;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char meta[PATH_MAX + 300], fs[PATH_MAX + 300];
        snprintf(meta, sizeof meta, "%s/%s/meta.json", path, e->d_name);
        snprintf(fs, sizeof fs, "%s/%s/fs", path, e->d_name);
        if (!is_file(meta) || !is_dir(fs)) {
            fprintf(stderr, "  half-published layer: %s/%s\n", path, e->d_name);
            CHECK(!"every published layer is complete");
            ok = false;
        }
    }
    closedir(d);
    return ok;
}

/* ---- misc ---- */

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool take_string_eq(char *s, const char *want) {
    bool eq = s != NULL && want != NULL ? strcmp(s, want) == 0 : s == NULL && want == NULL;
    if (!eq) fprintf(stderr, "  got \"%s\", want \"%s\"\n", s ? s : "(null)", want ? want : "(null)");
    msb_string_free(s);
    return eq;
}

/* ---- network helpers ---- */

static int listen_loopback(char host[64]) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    snprintf(host, 64, "127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

int black_hole_start(char host[64]) { return listen_loopback(host); }

#define PROXY_MAX_CONNS 64

typedef struct proxy_conn {
    struct slow_proxy *proxy;
    int client, upstream;
    pthread_t thread;
    bool used;
} proxy_conn;

struct slow_proxy {
    int listen_fd;
    char host[64];
    struct sockaddr_in upstream;
    size_t chunk;
    int tick_ms;
    atomic_bool stop;
    pthread_t acceptor;
    pthread_mutex_t lock;
    proxy_conn conns[PROXY_MAX_CONNS];
};

static bool write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

static void *proxy_pump(void *arg) {
    proxy_conn *c = arg;
    slow_proxy *p = c->proxy;
    char buf[65536];
    size_t chunk = p->chunk < sizeof buf ? p->chunk : sizeof buf;
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2] = {{c->client, POLLIN, 0}, {c->upstream, POLLIN, 0}};
        if (poll(fds, 2, 100) < 0) break;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(c->client, buf, sizeof buf, 0);
            if (r <= 0 || !write_all(c->upstream, buf, (size_t)r)) break;
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(c->upstream, buf, chunk, 0);
            if (r <= 0 || !write_all(c->client, buf, (size_t)r)) break;
            sleep_ms(p->tick_ms);
        }
    }
    shutdown(c->client, SHUT_RDWR);
    shutdown(c->upstream, SHUT_RDWR);
    return NULL;
}

static void *proxy_accept(void *arg) {
    slow_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {p->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        int client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) continue;
        int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (up < 0 || connect(up, (struct sockaddr *)&p->upstream, sizeof p->upstream) != 0) {
            if (up >= 0) close(up);
            close(client);
            continue;
        }
        pthread_mutex_lock(&p->lock);
        proxy_conn *slot = NULL;
        for (int i = 0; i < PROXY_MAX_CONNS; i++) {
            if (!p->conns[i].used) {
                slot = &p->conns[i];
                break;
            }
        }
        if (slot != NULL) {
            slot->proxy = p;
            slot->client = client;
            slot->upstream = up;
            slot->used = pthread_create(&slot->thread, NULL, proxy_pump, slot) == 0;
        }
        pthread_mutex_unlock(&p->lock);
        if (slot == NULL || !slot->used) {
            close(client);
            close(up);
        }
    }
    return NULL;
}

slow_proxy *slow_proxy_start(const char *upstream, size_t chunk, int tick_ms) {
    slow_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    char ip[64];
    int port = 0;
    if (sscanf(upstream, "%63[^:]:%d", ip, &port) != 2) {
        free(p);
        return NULL;
    }
    p->upstream.sin_family = AF_INET;
    p->upstream.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &p->upstream.sin_addr);
    p->chunk = chunk;
    p->tick_ms = tick_ms;
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->lock, NULL);
    p->listen_fd = listen_loopback(p->host);
    if (p->listen_fd < 0 || pthread_create(&p->acceptor, NULL, proxy_accept, p) != 0) {
        if (p->listen_fd >= 0) close(p->listen_fd);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

const char *slow_proxy_host(const slow_proxy *p) { return p->host; }

void slow_proxy_stop(slow_proxy *p) {
    if (p == NULL) return;
    atomic_store(&p->stop, true);
    pthread_join(p->acceptor, NULL);
    for (int i = 0; i < PROXY_MAX_CONNS; i++) {
        if (p->conns[i].used) {
            pthread_join(p->conns[i].thread, NULL);
            close(p->conns[i].client);
            close(p->conns[i].upstream);
        }
    }
    close(p->listen_fd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
