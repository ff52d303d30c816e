*** Settings ***
Documentation    Run by `vm_cleanup.robot` in its own Robot process, which it then interrupts or kills.

Library          VmLibrary

Test Tags        vm    cleanup-worker


*** Test Cases ***
Launch A VM And Wait
    [Documentation]    Boot a VM, say so on the console, then sleep until interrupted.
    Launch NVMe VM    name=sleeper    size=64M
    Log To Console    VM READY
    Sleep    300s
