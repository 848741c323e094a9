/* Parsers for the CLI's flag values: ports with the platform's handler rules, env, words. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

size_t cli_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void cli_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int cli_strv_push(char ***v, const char *s)
{
    size_t n = cli_strv_len(*v);
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (!nv)
        return -1;
    nv[n] = strdup(s);
    nv[n + 1] = NULL;
    *v = nv;
    return nv[n] ? 0 : -1;
}

static bool has_handler(const struct cli_port *p, const char *h)
{
    for (int i = 0; i < p->n_handlers; i++)
        if (strcmp(p->handlers[i], h) == 0)
            return true;
    return false;
}

static int port_num(const char *s, size_t len, const char *spec, struct nubo_err *err)
{
    char buf[8];
    if (len == 0 || len >= sizeof(buf))
        return nubo_error(err, 0, "bad port spec '%s': expected EXT:INT[/h1+h2], e.g. 443:8080/http+tls", spec);
    memcpy(buf, s, len);
    buf[len] = '\0';
    int64_t v;
    if (nubo_parse_int(buf, 1, 65535, &v, NULL) < 0)
        return nubo_error(err, 0, "bad port spec '%s': '%s' is not a port (1..65535)", spec, buf);
    return (int)v;
}

/* The platform's rules: 80 = http (optionally redirect), never tls; 443 = http+tls;
 * redirect only on 80; every other port tls and not http. */
static int check_handlers(const struct cli_port *p, const char *spec, struct nubo_err *err)
{
    if (p->port == 80) {
        if (!has_handler(p, "http") || has_handler(p, "tls"))
            return nubo_error(err, 0, "bad port spec '%s': port 80 needs 'http' and no 'tls' (e.g. 80:443/http+redirect)", spec);
    } else if (p->port == 443) {
        if (!has_handler(p, "http") || !has_handler(p, "tls"))
            return nubo_error(err, 0, "bad port spec '%s': port 443 needs 'http+tls'", spec);
    } else if (!has_handler(p, "tls") || has_handler(p, "http")) {
        return nubo_error(err, 0, "bad port spec '%s': ports other than 80 and 443 carry raw TCP behind 'tls' only", spec);
    }
    if (p->port != 80 && has_handler(p, "redirect"))
        return nubo_error(err, 0, "bad port spec '%s': 'redirect' is only allowed on port 80", spec);
    return 0;
}

int cli_parse_port(const char *s, struct cli_port *ports, int *n, int max, struct nubo_err *err)
{
    if (!s || !*s)
        return nubo_error(err, 0, "empty port spec: expected EXT:INT[/h1+h2], e.g. 443:8080/http+tls");
    struct cli_port p;
    memset(&p, 0, sizeof(p));
    const char *slash = strchr(s, '/');
    size_t nums_len = slash ? (size_t)(slash - s) : strlen(s);
    const char *colon = memchr(s, ':', nums_len);
    if (colon) {
        if ((p.port = port_num(s, (size_t)(colon - s), s, err)) < 0)
            return -1;
        if ((p.destination_port = port_num(colon + 1, nums_len - (size_t)(colon - s) - 1, s, err)) < 0)
            return -1;
    } else {
        if ((p.port = port_num(s, nums_len, s, err)) < 0)
            return -1;
        p.destination_port = p.port;
    }
    bool implied_redirect = false;
    if (slash) {
        const char *h = slash + 1;
        if (!*h)
            return nubo_error(err, 0, "bad port spec '%s': no handler after '/'", s);
        while (*h) {
            const char *plus = strchr(h, '+');
            size_t l = plus ? (size_t)(plus - h) : strlen(h);
            char name[16];
            if (l == 0 || l >= sizeof(name))
                return nubo_error(err, 0, "bad port spec '%s': empty or unknown handler", s);
            memcpy(name, h, l);
            name[l] = '\0';
            if (strcmp(name, "http") && strcmp(name, "tls") && strcmp(name, "redirect"))
                return nubo_error(err, 0, "bad port spec '%s': unknown handler '%s' (use http, tls, redirect)", s, name);
            if (has_handler(&p, name))
                return nubo_error(err, 0, "bad port spec '%s': handler '%s' given twice", s, name);
            if (p.n_handlers >= 3)
                return nubo_error(err, 0, "bad port spec '%s': too many handlers", s);
            snprintf(p.handlers[p.n_handlers++], sizeof(p.handlers[0]), "%s", name);
            h += l;
            if (*h == '+') {
                h++;
                if (!*h)
                    return nubo_error(err, 0, "bad port spec '%s': trailing '+'", s);
            }
        }
    } else if (p.port == 443) {
        snprintf(p.handlers[0], sizeof(p.handlers[0]), "http");
        snprintf(p.handlers[1], sizeof(p.handlers[1]), "tls");
        p.n_handlers = 2;
        implied_redirect = true;
    } else if (p.port == 80) {
        snprintf(p.handlers[0], sizeof(p.handlers[0]), "http");
        p.n_handlers = 1;
    } else {
        snprintf(p.handlers[0], sizeof(p.handlers[0]), "tls");
        p.n_handlers = 1;
    }
    if (check_handlers(&p, s, err) < 0)
        return -1;
    for (int i = 0; i < *n; i++)
        if (ports[i].port == p.port)
            return nubo_error(err, 0, "bad port spec '%s': port %d is published twice", s, p.port);
    if (*n >= max)
        return nubo_error(err, 0, "too many published ports (max %d)", max);
    ports[(*n)++] = p;
    /* -p 443:8080 alone also publishes 80 -> 443 as a redirect, as the platform's CLI does. */
    if (implied_redirect) {
        for (int i = 0; i < *n; i++)
            if (ports[i].port == 80)
                return 0;
        if (*n >= max)
            return 0;
        struct cli_port r;
        memset(&r, 0, sizeof(r));
        r.port = 80;
        r.destination_port = 443;
        snprintf(r.handlers[0], sizeof(r.handlers[0]), "http");
        snprintf(r.handlers[1], sizeof(r.handlers[1]), "redirect");
        r.n_handlers = 2;
        ports[(*n)++] = r;
    }
    return 0;
}

void cli_ports_proto(const struct cli_port *ports, int n, struct nubo_ingress_port *out)
{
    for (int i = 0; i < n; i++) {
        out[i].port = ports[i].port;
        out[i].destination_port = ports[i].destination_port;
        out[i].handlers = 0;
        for (int k = 0; k < ports[i].n_handlers; k++)
            out[i].handlers |= nubo_handler_parse(ports[i].handlers[k]);
    }
}

int cli_parse_env(const char *s, json_t *obj, struct nubo_err *err)
{
    const char *eq = strchr(s, '=');
    size_t kl = eq ? (size_t)(eq - s) : strlen(s);
    if (kl == 0 || kl > 255)
        return nubo_error(err, 0, "bad environment variable '%s': expected KEY=VALUE", s);
    for (size_t i = 0; i < kl; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return nubo_error(err, 0, "bad environment variable name in '%s'", s);
    char key[256];
    memcpy(key, s, kl);
    key[kl] = '\0';
    const char *val = eq ? eq + 1 : getenv(key);
    if (!val)
        return nubo_error(err, 0, "environment variable '%s' has no value here: use -e %s=VALUE", key, key);
    json_object_set_new(obj, key, json_string(val));
    return 0;
}

char **cli_shell_split(const char *s, struct nubo_err *err)
{
    char **v = calloc(1, sizeof(char *));
    size_t cap = strlen(s) + 1;
    char *word = malloc(cap);
    if (!v || !word) {
        free(v);
        free(word);
        nubo_error(err, ENOMEM, "out of memory");
        return NULL;
    }
    size_t wl = 0;
    bool in_word = false;
    char quote = 0;
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '\0') {
            if (quote) {
                free(word);
                cli_strv_free(v);
                nubo_error(err, 0, "unterminated %c quote in '%s'", quote, s);
                return NULL;
            }
            break;
        }
        if (quote == '\'') {
            if (c == '\'')
                quote = 0;
            else
                word[wl++] = c;
            continue;
        }
        if (quote == '"') {
            if (c == '"')
                quote = 0;
            else if (c == '\\' && (p[1] == '"' || p[1] == '\\'))
                word[wl++] = *++p;
            else
                word[wl++] = c;
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\' && p[1]) {
            word[wl++] = *++p;
            in_word = true;
        } else if (isspace((unsigned char)c)) {
            if (in_word) {
                word[wl] = '\0';
                cli_strv_push(&v, word);
                wl = 0;
                in_word = false;
            }
        } else {
            word[wl++] = c;
            in_word = true;
        }
    }
    if (in_word) {
        word[wl] = '\0';
        cli_strv_push(&v, word);
    }
    free(word);
    return v;
}
