*** Settings ***
Documentation    One of two suites that `vm_parallel.robot` runs side by side with pabot: each boots
...              its own VM, talks QMP to it and runs a short fio job in it.

Resource         ../../../resources/vm.resource

Test Tags        vm    pabot-worker


*** Test Cases ***
Worker B Boots A VM And Runs Fio
    [Documentation]    Launch, QMP query, 3 s fio job; the VM is stopped by the listener.
    ${vm}    Launch NVMe VM    name=worker-b    size=256M
    Log    worker b: ssh port ${vm.ssh_port}, qmp ${vm.qmp_socket}    console=True
    ${status}    Execute QMP Command    ${vm}    query-status
    Should Be Equal    ${status}[status]    running
    ${result}    Run Fio Job On VM    ${vm}    latency_probe    runtime=3    size=64m
    Fio Result Should Meet Thresholds    ${result}    profile=emulated
