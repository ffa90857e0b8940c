/* Bare-metal start for QEMU's mps2-an386 (Cortex-M4F): vector table, FPU on, newlib's _start.
 * Used by tests/test_micro_cpp.py to run test/golden_test.cc on the target ISA; output and the
 * golden files go through semihosting (-specs=rdimon.specs). Not firmware. */
#include <stdint.h>

extern uint32_t __stack_top;
extern void _start(void);

void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20); /* CPACR: enable cp10/cp11 (the FPU) */
  __asm volatile("dsb\n isb");
  _start();
  for (;;) {
  }
}

void Default_Handler(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) const void* const vectors[16] = {
    &__stack_top, (const void*)Reset_Handler, (const void*)Default_Handler, (const void*)Default_Handler,
};
