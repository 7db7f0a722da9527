#!/usr/bin/python3
"""The harness's driver for Eclipse paho-mqtt (Python), protocol 1.

Reads commands from stdin and writes events to stdout, one JSON object per
line, as harness/clients/procclient/PROTOCOL.md describes. Runs under
Debian's python3 with python3-paho-mqtt (1.6.x); scripts/deps.sh installs it.

Settings, chosen as a paho-mqtt user would configure a long-running service,
so the harness judges paho's own resilience and not the driver's:
  - The first connection is client.connect() then client.loop_start(), the
    threaded interface the paho documentation shows. connect() makes one
    attempt; a failed first connection is reported and not retried. From then
    on loop_start's thread reconnects by itself (reconnect_on_failure=True,
    paho's default).
  - reconnect_delay_set(min_delay=1, max_delay=1): paho's default caps the
    backoff at 120 s; a cap of 1 s makes recovery times measure detection and
    reconnection, not a backoff cap of minutes (the Go paho adapter does the
    same). Settings "reconnect_min_s" and "reconnect_max_s" change it.
  - max_inflight_messages_set(20) and max_queued_messages_set(0): paho's
    defaults (20 QoS>0 messages in flight, an unbounded queue behind them).
    Settings "max_inflight" and "max_queued" change them.
  - A QoS 1/2 publish made while the connection is down stays in paho's queue
    and is sent after the reconnect (paho returns MQTT_ERR_NO_CONN but keeps
    the message); the driver answers when on_publish fires, which is paho's
    own notion of done. A QoS 0 publish while down is dropped by paho: the
    driver answers it as not sent.
  - keepalive: whole seconds, rounded up (paho takes seconds); 0 keeps paho's
    60 s. connect_timeout_ms sets paho's socket connect timeout (default 5 s).
    paho has no ping or response timeout of its own: it drops the connection
    when no PINGRESP comes within one keepalive; ping_timeout_ms and
    response_timeout_ms are ignored.
  - Subscriptions are not re-sent after a reconnect (paho does not); with a
    persistent session the broker keeps them.
  - close exits the process without DISCONNECT (os._exit), so the kernel
    closes the socket and the broker publishes the will.
"""

import base64
import json
import math
import os
import sys
import threading

import paho.mqtt
import paho.mqtt.client as mqtt

PROTOCOL = 1


class Driver:
    def __init__(self):
        self.out_lock = threading.Lock()
        self.lock = threading.Lock()  # guards the maps below
        self.client = None
        self.connect_id = None  # the connect request waiting for CONNACK
        self.connected_once = False
        self.disconnecting = False
        self.pubs = {}  # paho mid -> request id
        self.subs = {}
        self.unsubs = {}
        self.early_pubs = set()  # mids paho completed before publish() returned
        self.early_subs = {}
        self.early_unsubs = set()

    # --- output ---------------------------------------------------------

    def emit(self, obj):
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        with self.out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def ok(self, rid, **extra):
        self.emit({"ev": "result", "id": rid, "ok": True, **extra})

    def err(self, rid, msg, not_sent=False):
        ev = {"ev": "result", "id": rid, "ok": False, "error": msg}
        if not_sent:
            ev["not_sent"] = True
        self.emit(ev)

    def log(self, level, msg):
        self.emit({"ev": "log", "level": level, "msg": msg})

    # --- paho callbacks (paho's network thread) --------------------------

    def on_connect(self, client, userdata, flags, rc):
        with self.lock:
            rid, self.connect_id = self.connect_id, None
        if rc != 0:
            reason = "CONNACK refused: " + mqtt.connack_string(rc)
            if rid is not None:
                self.err(rid, reason)
            else:
                self.emit({"ev": "connect_failed", "reason": reason})
            return
        self.connected_once = True
        self.emit({"ev": "up", "session_present": bool(flags.get("session present", 0))})
        if rid is not None:
            self.ok(rid)

    def on_connect_fail(self, client, userdata):
        self.emit({"ev": "connect_failed", "reason": "connection attempt failed"})

    def on_disconnect(self, client, userdata, rc):
        if rc == 0 or self.disconnecting:
            self.emit({"ev": "down", "reason": "disconnected", "reconnecting": False})
        else:
            self.emit({"ev": "down", "reason": "rc=%d: %s" % (rc, mqtt.error_string(rc)), "reconnecting": True})

    def on_message(self, client, userdata, msg):
        self.emit({
            "ev": "message",
            "topic": msg.topic,
            "payload": base64.b64encode(msg.payload).decode("ascii"),
            "qos": msg.qos,
            "retain": bool(msg.retain),
            "dup": bool(msg.dup),
        })

    def on_publish(self, client, userdata, mid):
        with self.lock:
            rid = self.pubs.pop(mid, None)
            if rid is None:
                self.early_pubs.add(mid)
                return
        self.ok(rid)

    def on_subscribe(self, client, userdata, mid, granted):
        with self.lock:
            rid = self.subs.pop(mid, None)
            if rid is None:
                self.early_subs[mid] = granted
                return
        self.answer_sub(rid, granted)

    def answer_sub(self, rid, granted):
        if any(g == 0x80 for g in granted):
            self.err(rid, "subscription refused (SUBACK 0x80)")
        else:
            self.ok(rid)

    def on_unsubscribe(self, client, userdata, mid):
        with self.lock:
            rid = self.unsubs.pop(mid, None)
            if rid is None:
                self.early_unsubs.add(mid)
                return
        self.ok(rid)

    def on_log(self, client, userdata, level, buf):
        self.log("debug", buf)

    # --- commands (stdin thread) -----------------------------------------

    def hello(self, rid, cmd):
        self.ok(rid, hello={
            "protocol": PROTOCOL,
            "driver": "python-paho",
            "library": "paho-mqtt",
            "version": paho.mqtt.__version__,
            "capabilities": ["dup", "session_present"],
        })

    def connect(self, rid, cmd):
        if self.client is not None:
            self.err(rid, "connect called twice")
            return
        o = cmd["options"]
        s = cmd.get("settings") or {}
        c = mqtt.Client(client_id=o["client_id"], clean_session=o["clean_session"],
                        protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(min_delay=s.get("reconnect_min_s", 1), max_delay=s.get("reconnect_max_s", 1))
        c.max_inflight_messages_set(s.get("max_inflight", 20))
        c.max_queued_messages_set(s.get("max_queued", 0))
        if o.get("connect_timeout_ms"):
            c._connect_timeout = o["connect_timeout_ms"] / 1000.0  # paho 1.6 has no setter
        w = o.get("will")
        if w:
            c.will_set(w["topic"], base64.b64decode(w["payload"] or ""), w["qos"], w["retain"])
        c.on_connect = self.on_connect
        c.on_connect_fail = self.on_connect_fail
        c.on_disconnect = self.on_disconnect
        c.on_message = self.on_message
        c.on_publish = self.on_publish
        c.on_subscribe = self.on_subscribe
        c.on_unsubscribe = self.on_unsubscribe
        if s.get("log"):
            c.on_log = self.on_log
        keepalive = math.ceil(o["keepalive_ms"] / 1000) if o["keepalive_ms"] > 0 else 60
        self.client = c
        with self.lock:
            self.connect_id = rid
        # connect() blocks for the TCP connection: off the stdin thread, so
        # pings are answered meanwhile.
        threading.Thread(target=self.first_connect, args=(rid, o["host"], o["port"], keepalive),
                         daemon=True).start()

    def first_connect(self, rid, host, port, keepalive):
        c = self.client
        try:
            c.connect(host, port, keepalive)
        except Exception as e:  # socket errors, refused, unreachable
            with self.lock:
                self.connect_id = None
            self.err(rid, "connect: %s" % e)
            return
        c.loop_start()

    # paho calls on_publish holding its own message lock, so the driver never
    # holds self.lock while calling into paho: it registers the request after
    # the call and picks up an answer that came first from the early sets.

    def publish(self, rid, cmd):
        payload = base64.b64decode(cmd.get("payload") or "")
        qos = cmd.get("qos", 0)
        try:
            info = self.client.publish(cmd["topic"], payload, qos, cmd.get("retain", False))
        except (ValueError, TypeError) as e:
            self.err(rid, "publish: %s" % e, not_sent=True)
            return
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE or (qos == 0 and info.rc == mqtt.MQTT_ERR_NO_CONN):
            self.err(rid, "publish: " + mqtt.error_string(info.rc), not_sent=True)
            return
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.err(rid, "publish: " + mqtt.error_string(info.rc))
            return
        with self.lock:
            if info.mid not in self.early_pubs:
                self.pubs[info.mid] = rid
                return
            self.early_pubs.discard(info.mid)
        self.ok(rid)

    def subscribe(self, rid, cmd):
        rc, mid = self.client.subscribe(cmd["filter"], cmd.get("qos", 0))
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self.err(rid, "subscribe: " + mqtt.error_string(rc))
            return
        with self.lock:
            if mid not in self.early_subs:
                self.subs[mid] = rid
                return
            granted = self.early_subs.pop(mid)
        self.answer_sub(rid, granted)

    def unsubscribe(self, rid, cmd):
        rc, mid = self.client.unsubscribe(cmd["filter"])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self.err(rid, "unsubscribe: " + mqtt.error_string(rc))
            return
        with self.lock:
            if mid not in self.early_unsubs:
                self.unsubs[mid] = rid
                return
            self.early_unsubs.discard(mid)
        self.ok(rid)

    def disconnect(self, rid, cmd):
        c = self.client
        if c is None:
            self.ok(rid)
            return
        self.disconnecting = True
        threading.Thread(target=self.graceful, args=(rid, c), daemon=True).start()

    def graceful(self, rid, c):
        rc = c.disconnect()  # queues DISCONNECT; the loop thread sends it and ends
        c.loop_stop()
        if rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.ok(rid)
        else:
            self.err(rid, "disconnect: " + mqtt.error_string(rc))

    def close(self, rid, cmd):
        self.ok(rid)
        os._exit(0)  # no DISCONNECT: the broker sees the socket close

    def ping(self, rid, cmd):
        self.ok(rid)

    def run(self):
        handlers = {
            "hello": self.hello, "connect": self.connect, "publish": self.publish,
            "subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
            "disconnect": self.disconnect, "close": self.close, "ping": self.ping,
        }
        for raw in sys.stdin.buffer:
            cmd = json.loads(raw)
            rid = cmd["id"]
            h = handlers.get(cmd["cmd"])
            if h is None:
                self.err(rid, "unknown command %r" % cmd["cmd"])
                continue
            if self.client is None and cmd["cmd"] in ("publish", "subscribe", "unsubscribe"):
                self.err(rid, "not connected", not_sent=True)
                continue
            h(rid, cmd)
        os._exit(0)  # stdin closed: as close


if __name__ == "__main__":
    Driver().run()
