/*
 * Lesson 03, respond: the first answer, and the duty that comes with it: the client must
 * get the whole answer and a clean end of stream, even when it sent more than we read.
 */
#include "harness.h"
#include "tests.h"

#include <string.h>
#include <unistd.h>

TEST(answers_status_line_only)
{
    struct server s;

    server_start(&s);
    expect_answered(&s, NORMAL_REQUEST);
    server_stop(&s);
}

TEST(answer_survives_unread_bytes)
{
    char request[sizeof NORMAL_REQUEST - 1 + 20000];
    struct server s;
    struct reply r;

    /* More bytes after the head than the server reads with it. Closed with them unread, the
       connection ends in a reset, which a client may take for a failed request. */
    memcpy(request, NORMAL_REQUEST, sizeof NORMAL_REQUEST - 1);
    memset(request + sizeof NORMAL_REQUEST - 1, 'x', 20000);
    server_start(&s);
    int fd = client_connect(s.port);
    client_send(fd, request, sizeof request);
    note_case("%s, then 20000 bytes \"xxx...\" after the head",
              shown(NORMAL_REQUEST, strlen(NORMAL_REQUEST)));
    client_receive(fd, &r, patience());
    close(fd);
    expect_answer(&r, request, sizeof request, sizeof request, "the head, then 20000 bytes");
    server_stop(&s);
}
