/* STUDENT FIXTURE. Any stage (graded here as stage 08, the longest run). BROKEN: it prints
 * nothing, opens no socket, ignores SIGTERM (and SIGINT), and sleeps forever, as a program
 * stuck before its listen() would. A grader should see every test fail in bounded time
 * with "no Listening line within 3000 ms" (or "the server did not exit" for the setup-
 * error tests), the suite killing each copy with SIGKILL. */

/*
 * A server that never gets as far as listening.
 */
#include <signal.h>
#include <unistd.h>

int main(void)
{
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    for (;;)
        sleep(3600);
}
