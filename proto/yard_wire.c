/*  yard_wire.c — Yard messages over ZeroMQ sockets: the options every
    socket gets, and receiving / sending one whole multipart message
    ([routing id] [delimiter] header body...).

    Receiving never copies a body: each body frame is received straight
    into the caller's yard_wire_msg_t, and the decoder reads it in place.
    Receiving never loses sync either: once the first part of a message is
    in, every remaining part is read (extra bodies are closed at once), so
    the next call starts on a message boundary whatever the peer sent. */
#include "yard_proto.h"

#include <errno.h>
#include <string.h>

/*  High-water marks, in messages. The broker must absorb bursts from many
    peers without dropping (ROUTER drops at the mark); 100k messages of
    small bodies is tens of MiB at worst. */
#define S_HWM 100000

int yard_wire_setup(void *socket)
{
    int64_t maxmsg = YARD_MAX_MSGSIZE;
    int linger = 0, hwm = S_HWM, type = 0;
    size_t type_len = sizeof type;

    if (zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(socket, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(socket, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_getsockopt(socket, ZMQ_TYPE, &type, &type_len))
        return YARD_E_IO;
    if (type == ZMQ_ROUTER) {
        /*  HANDOVER: a client that reconnects with the same routing id
            (its identity survives reconnects by design) takes over the
            old pipe instead of being refused. MANDATORY off: an
            unroutable reply is dropped silently rather than failing the
            broker's send; the peer is gone and its tasks are handled by
            the heartbeat logic. */
        int on = 1, off = 0;
        if (zmq_setsockopt(socket, ZMQ_ROUTER_HANDOVER, &on, sizeof on) ||
            zmq_setsockopt(socket, ZMQ_ROUTER_MANDATORY, &off, sizeof off))
            return YARD_E_IO;
    }
    return 0;
}

void yard_wire_msg_init(yard_wire_msg_t *m)
{
    m->identity_len = 0;
    m->header_err = 0;
    m->role = (yard_role_t)0;
    m->cmd = (yard_cmd_t)0;
    m->nframes = 0;
    m->nbodies = 0;
}

void yard_wire_msg_close(yard_wire_msg_t *m)
{
    for (size_t i = 0; i < m->nbodies; i++)
        zmq_msg_close(&m->bodies[i]);
    m->nbodies = 0;
    m->nframes = 0;
}

/*  Receives the next part of a message already under way. The parts of a
    multipart message arrive together, so this never waits; it retries
    EINTR so a signal cannot leave us in the middle of a message. */
static int s_recv_part(zmq_msg_t *frame, void *socket)
{
    int rc;
    zmq_msg_init(frame);
    while ((rc = zmq_msg_recv(frame, socket, 0)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        int e = errno;
        zmq_msg_close(frame);
        errno = e;
        return -1;
    }
    return 0;
}

int yard_wire_recv(void *socket, bool router, yard_wire_msg_t *m, int flags)
{
    zmq_msg_t frame;
    bool more;

    yard_wire_msg_close(m);
    m->identity_len = 0;
    m->header_err = 0;
    m->role = (yard_role_t)0;
    m->cmd = (yard_cmd_t)0;

    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, socket, flags) < 0) {
        int e = errno;
        zmq_msg_close(&frame);
        errno = e;
        return YARD_E_IO;
    }
    more = zmq_msg_more(&frame);

    if (router) {
        /*  ZeroMQ routing ids are 1..255 bytes; the cap is belt and
            braces for the buffer, not a case we expect. */
        size_t n = zmq_msg_size(&frame);
        if (n > sizeof m->identity)
            n = sizeof m->identity;
        memcpy(m->identity, zmq_msg_data(&frame), n);
        m->identity_len = n;
        zmq_msg_close(&frame);
        if (!more) {
            m->header_err = YARD_E_HEADER; /*  identity and nothing else */
            return 0;
        }
        if (s_recv_part(&frame, socket))
            return YARD_E_IO;
        more = zmq_msg_more(&frame);
        if (zmq_msg_size(&frame) == 0 && more) {
            /*  An empty delimiter, as REQ sockets send: skip it. */
            zmq_msg_close(&frame);
            if (s_recv_part(&frame, socket))
                return YARD_E_IO;
            more = zmq_msg_more(&frame);
        }
    }

    m->header_err = yard_header_parse(zmq_msg_data(&frame),
                                      zmq_msg_size(&frame), &m->role, &m->cmd);
    zmq_msg_close(&frame);

    while (more) {
        /*  Past YARD_MAX_BATCH the frame is received into scratch and
            dropped; nframes still counts it so the caller can refuse the
            message with "bad_frames". */
        bool keep = m->nbodies < YARD_MAX_BATCH;
        zmq_msg_t *dst = keep ? &m->bodies[m->nbodies] : &frame;
        if (s_recv_part(dst, socket)) {
            int e = errno;
            yard_wire_msg_close(m);
            errno = e;
            return YARD_E_IO;
        }
        more = zmq_msg_more(dst);
        m->nframes++;
        if (keep)
            m->nbodies++;
        else
            zmq_msg_close(dst);
    }
    return 0;
}

/*  Bad arguments come back as YARD_E_IO with errno EINVAL (or EMSGSIZE for
    a frame libzmq on the other side would refuse by dropping the whole
    connection), the way ZeroMQ reports them, so callers have one failure
    path. With identity (a ROUTER socket) every part is sent ZMQ_DONTWAIT:
    yard_wire_setup leaves ROUTER_MANDATORY off, so libzmq drops a message
    for a peer that is gone or full and we return 0; a caller that turns
    ROUTER_MANDATORY on gets YARD_E_IO with errno EHOSTUNREACH or EAGAIN
    instead, and nothing of the message was sent. */
int yard_wire_send(void *socket, const void *identity, size_t identity_len,
                   yard_role_t role, yard_cmd_t cmd, const yard_frame_t *bodies,
                   size_t nbodies, int flags)
{
    uint8_t header[YARD_HEADER_SIZE];

    if (nbodies > YARD_MAX_BATCH || (nbodies && !bodies) ||
        (identity && (identity_len == 0 || identity_len > 255)) ||
        (flags & ~ZMQ_DONTWAIT)) {
        errno = EINVAL;
        return YARD_E_IO;
    }
    for (size_t i = 0; i < nbodies; i++) {
        if (!bodies[i].data && bodies[i].len) {
            errno = EINVAL;
            return YARD_E_IO;
        }
        if (bodies[i].len > YARD_MAX_MSGSIZE) {
            errno = EMSGSIZE;
            return YARD_E_IO;
        }
    }

    int base = identity ? ZMQ_DONTWAIT : flags;
    if (identity &&
        zmq_send(socket, identity, identity_len, ZMQ_SNDMORE | base) < 0)
        return YARD_E_IO;
    yard_header_make(header, role, cmd);
    if (zmq_send(socket, header, sizeof header,
                 base | (nbodies ? ZMQ_SNDMORE : 0)) < 0)
        return YARD_E_IO;
    for (size_t i = 0; i < nbodies; i++) {
        /*  Later parts of a message never hit the high-water mark (libzmq
            counts whole messages), so these do not fail with EAGAIN. */
        int more = i + 1 < nbodies ? ZMQ_SNDMORE : 0;
        if (zmq_send(socket, bodies[i].data, bodies[i].len, base | more) < 0)
            return YARD_E_IO;
    }
    return 0;
}
