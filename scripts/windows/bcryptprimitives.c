/* Wine 8 lacks bcryptprimitives.dll, from which current Rust's standard
 * library imports ProcessPrng. This one-function stand-in, placed beside a
 * cross-compiled .exe, lets it run under Wine (tests only; never shipped). */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return RtlGenRandom(data, (ULONG)len);
}
