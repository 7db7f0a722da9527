/*
 * The harness's driver for libmosquitto (C), protocol 1.
 *
 * Reads commands from stdin and writes events to stdout, one JSON object per line, as
 * harness/clients/procclient/PROTOCOL.md describes. Built by `make c-driver` against Debian's libmosquitto-dev
 * (2.0.x) and libcjson-dev; scripts/deps.sh installs them.
 *
 * Settings, chosen as a libmosquitto user would configure a long-running program, so the harness judges
 * libmosquitto's own resilience and not the driver's:
 *   - The first connection is mosquitto_connect() then mosquitto_loop_start(), the threaded interface of the
 *     library's examples. mosquitto_connect() makes one attempt; a failed first connection is reported and not
 *     retried. From then on the loop thread reconnects by itself.
 *   - mosquitto_reconnect_delay_set(1, 1, false) and mosquitto_max_inflight_messages_set(20): libmosquitto's
 *     defaults (a fixed 1 s between attempts, 20 QoS>0 messages in flight, an unbounded queue behind them).
 *     Settings "reconnect_delay_s", "reconnect_delay_max_s", "reconnect_exponential" and "max_inflight" change them.
 *   - A QoS 1/2 publish made while the connection is down stays in the library's queue and is sent after the
 *     reconnect (mosquitto_publish returns MOSQ_ERR_NO_CONN but keeps the message); the driver answers when the
 *     publish callback fires, the library's own notion of done. A QoS 0 publish while down is not sent: answered as
 *     not sent.
 *   - keepalive: whole seconds, rounded up, at least 5 (libmosquitto's minimum); 0 keeps 60 s. libmosquitto drops
 *     the connection when no PINGRESP comes within one keepalive; it has no connect, ping or response timeout of
 *     its own, so connect_timeout_ms, ping_timeout_ms and response_timeout_ms are ignored.
 *   - Subscriptions are not re-sent after a reconnect (libmosquitto does not); with a persistent session the broker
 *     keeps them.
 *   - Deliveries: struct mosquitto_message has no DUP flag, so dup is always false (no "dup" capability).
 *   - close exits the process without DISCONNECT (_exit), so the kernel closes the socket and the broker publishes
 *     the will.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROTOCOL 1

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* guards the tables and the state below */

static struct mosquitto *mosq;
static double connect_id = -1; /* the connect request waiting for CONNACK */
static bool up, disconnecting;

/* Pending requests by mid, and answers that came before the request was filed. */
enum kind { K_PUB, K_SUB, K_UNSUB, K_KINDS };
struct entry {
	int mid;
	double id;     /* < 0: an early answer with no request yet */
	bool refused;  /* a SUBACK with 0x80 */
	struct entry *next;
};
static struct entry *table[K_KINDS];

/* ---- output ------------------------------------------------------------------------------------------------ */

static void emit(cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!s) {
		abort();
	}
	pthread_mutex_lock(&out_mu);
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	free(s);
}

static cJSON *event(const char *ev)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ev", ev);
	return o;
}

static void ok(double id)
{
	cJSON *o = event("result");
	cJSON_AddNumberToObject(o, "id", id);
	cJSON_AddBoolToObject(o, "ok", true);
	emit(o);
}

static void fail(double id, const char *what, const char *msg, bool not_sent)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s: %s", what, msg);
	cJSON *o = event("result");
	cJSON_AddNumberToObject(o, "id", id);
	cJSON_AddBoolToObject(o, "ok", false);
	cJSON_AddStringToObject(o, "error", buf);
	if (not_sent) {
		cJSON_AddBoolToObject(o, "not_sent", true);
	}
	emit(o);
}

static void reason_event(const char *ev, const char *reason, int reconnecting)
{
	cJSON *o = event(ev);
	cJSON_AddStringToObject(o, "reason", reason);
	if (reconnecting >= 0) {
		cJSON_AddBoolToObject(o, "reconnecting", reconnecting);
	}
	emit(o);
}

/* ---- base64 ------------------------------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const uint8_t *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	if (!out) {
		abort();
	}
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* b64_decode decodes s into a new buffer and its length; NULL for malformed input. */
static uint8_t *b64_decode(const char *s, int *len)
{
	size_t n = strlen(s);
	if (n % 4) {
		return NULL;
	}
	uint8_t *out = malloc(n / 4 * 3 + 1);
	int k = 0;
	uint32_t v = 0;
	int bits = 0;
	if (!out) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=') {
			if (i + 2 < n) {
				free(out);
				return NULL;
			}
			break;
		}
		const char *c = strchr(b64, s[i]);
		if (!c || !s[i]) {
			free(out);
			return NULL;
		}
		v = v << 6 | (uint32_t)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (uint8_t)(v >> bits);
		}
	}
	*len = k;
	return out;
}

/* ---- the request tables ------------------------------------------------------------------------------------ */

/* file records request id for mid, or, if the answer came first, takes it: it returns true and sets *refused. */
static bool file(enum kind k, int mid, double id, bool *refused)
{
	pthread_mutex_lock(&mu);
	for (struct entry **e = &table[k]; *e; e = &(*e)->next) {
		if ((*e)->mid == mid && (*e)->id < 0) {
			struct entry *x = *e;
			*e = x->next;
			*refused = x->refused;
			free(x);
			pthread_mutex_unlock(&mu);
			return true;
		}
	}
	struct entry *x = calloc(1, sizeof *x);
	if (!x) {
		abort();
	}
	x->mid = mid;
	x->id = id;
	x->next = table[k];
	table[k] = x;
	pthread_mutex_unlock(&mu);
	return false;
}

/* answered takes the request filed for mid, or records an early answer; it returns the id, or -1. */
static double answered(enum kind k, int mid, bool refused)
{
	pthread_mutex_lock(&mu);
	for (struct entry **e = &table[k]; *e; e = &(*e)->next) {
		if ((*e)->mid == mid && (*e)->id >= 0) {
			struct entry *x = *e;
			double id = x->id;
			*e = x->next;
			free(x);
			pthread_mutex_unlock(&mu);
			return id;
		}
	}
	struct entry *x = calloc(1, sizeof *x);
	if (!x) {
		abort();
	}
	x->mid = mid;
	x->id = -1;
	x->refused = refused;
	x->next = table[k];
	table[k] = x;
	pthread_mutex_unlock(&mu);
	return -1;
}

/* ---- library callbacks (the loop thread) ------------------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags)
{
	(void)m;
	(void)obj;
	pthread_mutex_lock(&mu);
	double id = connect_id;
	connect_id = -1;
	if (rc == 0) {
		up = true;
	}
	pthread_mutex_unlock(&mu);
	if (rc != 0) {
		if (id >= 0) {
			fail(id, "connect", mosquitto_connack_string(rc), false);
		} else {
			reason_event("connect_failed", mosquitto_connack_string(rc), -1);
		}
		return;
	}
	cJSON *o = event("up");
	cJSON_AddBoolToObject(o, "session_present", flags & 1);
	emit(o);
	if (id >= 0) {
		ok(id);
	}
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
	(void)m;
	(void)obj;
	pthread_mutex_lock(&mu);
	bool was_up = up, graceful = disconnecting;
	up = false;
	pthread_mutex_unlock(&mu);
	char buf[256];
	snprintf(buf, sizeof buf, "rc=%d: %s", rc, mosquitto_strerror(rc));
	if (rc == 0 || graceful) {
		reason_event("down", "disconnected", false);
	} else if (was_up) {
		reason_event("down", buf, true);
	} else {
		reason_event("connect_failed", buf, -1);
	}
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
	(void)m;
	(void)obj;
	char *p = b64_encode(msg->payload, (size_t)msg->payloadlen);
	cJSON *o = event("message");
	cJSON_AddStringToObject(o, "topic", msg->topic);
	cJSON_AddStringToObject(o, "payload", p);
	cJSON_AddNumberToObject(o, "qos", msg->qos);
	cJSON_AddBoolToObject(o, "retain", msg->retain);
	cJSON_AddBoolToObject(o, "dup", false);
	free(p);
	emit(o);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
	(void)m;
	(void)obj;
	double id = answered(K_PUB, mid, false);
	if (id >= 0) {
		ok(id);
	}
}

static void answer_sub(double id, bool refused)
{
	if (refused) {
		fail(id, "subscribe", "subscription refused (SUBACK 0x80)", false);
	} else {
		ok(id);
	}
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
	(void)m;
	(void)obj;
	bool refused = false;
	for (int i = 0; i < n; i++) {
		refused |= granted[i] == 0x80;
	}
	double id = answered(K_SUB, mid, refused);
	if (id >= 0) {
		answer_sub(id, refused);
	}
}

static void on_unsubscribe(struct mosquitto *m, void *obj, int mid)
{
	(void)m;
	(void)obj;
	double id = answered(K_UNSUB, mid, false);
	if (id >= 0) {
		ok(id);
	}
}

static void on_log(struct mosquitto *m, void *obj, int level, const char *s)
{
	(void)m;
	(void)obj;
	(void)level;
	cJSON *o = event("log");
	cJSON_AddStringToObject(o, "level", "debug");
	cJSON_AddStringToObject(o, "msg", s);
	emit(o);
}

/* ---- commands (the stdin thread) --------------------------------------------------------------------------- */

static int num(const cJSON *o, const char *k, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valueint : def;
}

static bool flag(const cJSON *o, const char *k, bool def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

struct first {
	double id;
	char host[256];
	int port, keepalive;
};

static void *first_connect(void *arg)
{
	struct first *f = arg;
	int rc = mosquitto_connect(mosq, f->host, f->port, f->keepalive);
	if (rc != MOSQ_ERR_SUCCESS) {
		pthread_mutex_lock(&mu);
		connect_id = -1;
		pthread_mutex_unlock(&mu);
		fail(f->id, "connect", rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc), false);
	} else {
		mosquitto_loop_start(mosq);
	}
	free(f);
	return NULL;
}

static void cmd_connect(double id, const cJSON *cmd)
{
	if (mosq) {
		fail(id, "connect", "connect called twice", false);
		return;
	}
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(cmd, "options");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(cmd, "settings");
	mosq = mosquitto_new(str(o, "client_id"), flag(o, "clean_session", true), NULL);
	if (!mosq) {
		fail(id, "connect", "mosquitto_new failed", false);
		return;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_reconnect_delay_set(mosq, (unsigned)num(s, "reconnect_delay_s", 1), (unsigned)num(s, "reconnect_delay_max_s", 1),
	                              flag(s, "reconnect_exponential", false));
	mosquitto_max_inflight_messages_set(mosq, (unsigned)num(s, "max_inflight", 20));
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "will");
	if (cJSON_IsObject(w)) {
		int n = 0;
		uint8_t *p = b64_decode(str(w, "payload"), &n);
		if (!p) {
			fail(id, "connect", "will payload is not base64", false);
			return;
		}
		mosquitto_will_set(mosq, str(w, "topic"), n, p, num(w, "qos", 0), flag(w, "retain", false));
		free(p);
	}
	mosquitto_connect_with_flags_callback_set(mosq, on_connect);
	mosquitto_disconnect_callback_set(mosq, on_disconnect);
	mosquitto_message_callback_set(mosq, on_message);
	mosquitto_publish_callback_set(mosq, on_publish);
	mosquitto_subscribe_callback_set(mosq, on_subscribe);
	mosquitto_unsubscribe_callback_set(mosq, on_unsubscribe);
	if (flag(s, "log", false)) {
		mosquitto_log_callback_set(mosq, on_log);
	}
	int ka = num(o, "keepalive_ms", 0);
	struct first *f = calloc(1, sizeof *f);
	if (!f) {
		abort();
	}
	f->id = id;
	snprintf(f->host, sizeof f->host, "%s", str(o, "host"));
	f->port = num(o, "port", 1883);
	f->keepalive = ka > 0 ? (int)ceil(ka / 1000.0) : 60;
	if (f->keepalive < 5) {
		f->keepalive = 5;
	}
	pthread_mutex_lock(&mu);
	connect_id = id;
	pthread_mutex_unlock(&mu);
	/* mosquitto_connect blocks for the TCP connection: off the stdin thread, so pings are answered meanwhile. */
	pthread_t t;
	pthread_create(&t, NULL, first_connect, f);
	pthread_detach(t);
}

static void cmd_publish(double id, const cJSON *cmd)
{
	int n = 0, mid = 0, qos = num(cmd, "qos", 0);
	uint8_t *p = b64_decode(str(cmd, "payload"), &n);
	if (!p) {
		fail(id, "publish", "payload is not base64", true);
		return;
	}
	int rc = mosquitto_publish(mosq, &mid, str(cmd, "topic"), n, p, qos, flag(cmd, "retain", false));
	free(p);
	switch (rc) {
	case MOSQ_ERR_SUCCESS:
		break;
	case MOSQ_ERR_NO_CONN:
		if (qos > 0) {
			break; /* queued: sent after the reconnect */
		}
		/* fall through */
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_NOMEM:
		fail(id, "publish", mosquitto_strerror(rc), true);
		return;
	default:
		fail(id, "publish", mosquitto_strerror(rc), false);
		return;
	}
	bool refused;
	if (file(K_PUB, mid, id, &refused)) {
		ok(id);
	}
}

static void cmd_subscribe(double id, const cJSON *cmd)
{
	int mid = 0;
	int rc = mosquitto_subscribe(mosq, &mid, str(cmd, "filter"), num(cmd, "qos", 0));
	if (rc != MOSQ_ERR_SUCCESS) {
		fail(id, "subscribe", mosquitto_strerror(rc), false);
		return;
	}
	bool refused;
	if (file(K_SUB, mid, id, &refused)) {
		answer_sub(id, refused);
	}
}

static void cmd_unsubscribe(double id, const cJSON *cmd)
{
	int mid = 0;
	int rc = mosquitto_unsubscribe(mosq, &mid, str(cmd, "filter"));
	if (rc != MOSQ_ERR_SUCCESS) {
		fail(id, "unsubscribe", mosquitto_strerror(rc), false);
		return;
	}
	bool refused;
	if (file(K_UNSUB, mid, id, &refused)) {
		ok(id);
	}
}

static void *graceful(void *arg)
{
	double id = *(double *)arg;
	free(arg);
	int rc = mosquitto_disconnect(mosq); /* the loop thread sends DISCONNECT and ends */
	mosquitto_loop_stop(mosq, false);
	if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN) {
		ok(id);
	} else {
		fail(id, "disconnect", mosquitto_strerror(rc), false);
	}
	return NULL;
}

static void cmd_disconnect(double id)
{
	if (!mosq) {
		ok(id);
		return;
	}
	pthread_mutex_lock(&mu);
	disconnecting = true;
	pthread_mutex_unlock(&mu);
	double *arg = malloc(sizeof *arg);
	if (!arg) {
		abort();
	}
	*arg = id;
	pthread_t t;
	pthread_create(&t, NULL, graceful, arg);
	pthread_detach(t);
}

static void cmd_hello(double id)
{
	int major, minor, rev;
	char version[32];
	mosquitto_lib_version(&major, &minor, &rev);
	snprintf(version, sizeof version, "%d.%d.%d", major, minor, rev);
	cJSON *o = event("result");
	cJSON_AddNumberToObject(o, "id", id);
	cJSON_AddBoolToObject(o, "ok", true);
	cJSON *h = cJSON_AddObjectToObject(o, "hello");
	cJSON_AddNumberToObject(h, "protocol", PROTOCOL);
	cJSON_AddStringToObject(h, "driver", "c-libmosquitto");
	cJSON_AddStringToObject(h, "library", "libmosquitto");
	cJSON_AddStringToObject(h, "version", version);
	cJSON *caps = cJSON_AddArrayToObject(h, "capabilities");
	cJSON_AddItemToArray(caps, cJSON_CreateString("session_present"));
	emit(o);
}

int main(void)
{
	mosquitto_lib_init();
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		cJSON *cmd = cJSON_Parse(line);
		if (!cmd) {
			fprintf(stderr, "driver: a command that is not JSON: %s", line);
			return 2;
		}
		double id = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cmd, "id"));
		const char *c = str(cmd, "cmd");
		if (!mosq && (!strcmp(c, "publish") || !strcmp(c, "subscribe") || !strcmp(c, "unsubscribe"))) {
			fail(id, c, "not connected", true);
		} else if (!strcmp(c, "hello")) {
			cmd_hello(id);
		} else if (!strcmp(c, "connect")) {
			cmd_connect(id, cmd);
		} else if (!strcmp(c, "publish")) {
			cmd_publish(id, cmd);
		} else if (!strcmp(c, "subscribe")) {
			cmd_subscribe(id, cmd);
		} else if (!strcmp(c, "unsubscribe")) {
			cmd_unsubscribe(id, cmd);
		} else if (!strcmp(c, "disconnect")) {
			cmd_disconnect(id);
		} else if (!strcmp(c, "ping")) {
			ok(id);
		} else if (!strcmp(c, "close")) {
			ok(id);
			_exit(0); /* no DISCONNECT: the broker sees the socket close */
		} else {
			fail(id, c, "unknown command", false);
		}
		cJSON_Delete(cmd);
	}
	_exit(0); /* stdin closed: as close */
}
