*** Settings ***
Documentation    The workload set in the built-in VM target: fio runs in the guest against emulated
...              NVMe namespaces (QEMU, TCG when KVM is unusable), judged by the threshold profile
...              ${VM_PROFILE} (default emulated). One VM with two controllers serves the whole suite.
...
...              Example: robot --variable RUNTIME:10 suites/performance/vm_workloads.robot

Resource         ../../resources/vm.resource

Suite Setup      Launch Workload VM

Test Tags        performance    vm


*** Variables ***
${RUNTIME}         5
${QD64_MEAN_MS}    320
${QD64_P99_MS}     500
${VM}              ${None}
${DEV0}            /dev/nvme0n1
${DEV1}            /dev/nvme1n1
@{SERIALS}         WORKLOAD0    WORKLOAD1


*** Test Cases ***
Mixed Random Read Write In VM
    [Documentation]    70/30 random read/write, 4 KiB, QD16, on the first controller.
    ${result}    Run Fio Job On VM    ${VM}    mixed_randrw    filename=${DEV0}    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}
    Fio Result Should Be Consistent    ${result}    profile=${VM_PROFILE}    ramp=1

Latency Probe In VM
    [Documentation]    QD1 4 KiB random reads: the emulated device's service time.
    ${result}    Run Fio Job On VM    ${VM}    latency_probe    filename=${DEV0}    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}

Random Multi IO Stress In VM
    [Documentation]    Small, medium and large random I/O of different mixes at once.
    ${result}    Run Fio Job On VM    ${VM}    random_multi_io    filename=${DEV0}    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}

Multi Queue In VM
    [Documentation]    Four submitters reported as one group, at QD8 each in the guest (the host
    ...    variant uses QD32): 128 I/Os in flight on one emulated vCPU only measure the queueing
    ...    (Little's law: mean latency = 128 / IOPS, ~100 ms under TCG).
    ${result}    Run Fio Job On VM    ${VM}    multi_queue    filename=${DEV0}    iodepth=8
    ...    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}

Multi Device In VM
    [Documentation]    The same load on both controllers at once; each must meet the limits on its own.
    ${result}    Run Fio Job On VM    ${VM}    multi_device    dev0.filename=${DEV0}    dev1.filename=${DEV1}
    ...    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}

Queue Depth Sweep In VM
    [Documentation]    QD 1, 4, 16, 64 one after another (4 s each): IOPS must not fall as depth rises
    ...    by more than the run's own noise (a TCG guest beside another VM swings tens of percent).
    ...    At QD64 latency is queueing (Little's law: 64 / IOPS), so its limits follow the
    ...    profile's IOPS floor: mean <= 64 / 200 IOPS = ${QD64_MEAN_MS} ms.
    ${result}    Run Fio Job On VM    ${VM}    qd_sweep    filename=${DEV0}    runtime=4
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}
    ...    qd64.max_mean_latency_ms=${QD64_MEAN_MS}    qd64.max_p99_latency_ms=${QD64_P99_MS}
    IOPS Should Not Fall With Queue Depth    ${result}    qd1    qd16


*** Keywords ***
Launch Workload VM
    [Documentation]    One VM with two 1 GiB controllers for the suite; finds each controller's device
    ...    by its serial (the guest numbers controllers in probe order).
    ${vm}    Launch NVMe VM    name=workloads    size=1G    controllers=2    serials=${SERIALS}
    ${devices}    Get VM Guest Devices    ${vm}
    VAR    ${VM}    ${vm}    scope=SUITE
    VAR    ${DEV0}    ${devices}[WORKLOAD0][0]    scope=SUITE
    VAR    ${DEV1}    ${devices}[WORKLOAD1][0]    scope=SUITE
