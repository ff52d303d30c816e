*** Settings ***
Documentation    Run by `vm_cleanup.robot` in its own Robot process: tests that hit their timeout while
...              a VM runs. Both fail by design; the listener must stop their VMs.

Library          VmLibrary

Test Tags        vm    cleanup-worker


*** Test Cases ***
Timeout While The VM Boots
    [Documentation]    The timeout strikes inside Launch NVMe VM's wait for readiness.
    [Timeout]    2s
    Launch NVMe VM    name=timeout-boot    size=64M

Timeout While The VM Runs
    [Documentation]    The timeout strikes after the VM is ready.
    [Timeout]    30s
    Launch NVMe VM    name=timeout-run    size=64M
    Sleep    60s
