*** Settings ***
Documentation    Bad input and faults of our own: each is one clear line, and no QEMU is left.

Library          OperatingSystem
Library          Process
Library          VmLibrary    boot_timeout=60

Test Tags        vm    acceptance    errors


*** Variables ***
${FAST_APPEND}        console=ttyS0 loglevel=4 panic=-1 rdinit=/init
# A name of this run's own, so the last test finds only this suite's QEMU on a shared machine.
${NAME}               err-${{__import__("uuid").uuid4().hex[:8]}}
${MISSING_BACKING}    namespace 1 of nvme0: backing file '/nonexistent-${NAME}/backing.raw' does not exist
...                   (give an existing raw or qcow2 file, or create_backing=True to create it)
${NO_FOLDER}          namespace 1 of nvme0: cannot create backing file '*${/}no${/}disk.raw':
...                   folder '*${/}no' does not exist
${BAD_MEMORY}         VM memory '0' is not positive (give MiB (e.g. 2048) or a size with a unit (e.g. 2G))
# Robot converts typed arguments before a keyword runs, and refuses what it cannot convert itself.
${NOT_A_TIME}         ValueError: Argument 'timeout' got value 'soon' that cannot be converted to timedelta or None.
${NOT_AN_ACCEL}       ValueError: Argument 'accel' got value 'fast' that cannot be converted to Accel:
...                   Accel does not have member 'fast'. Available: 'auto', 'kvm' and 'tcg'


*** Test Cases ***
Missing Kernel
    [Documentation]    A kernel path that does not exist fails before QEMU starts.
    Run Keyword And Expect Error    kernel '/nonexistent/vmlinuz' does not exist
    ...    Launch NVMe VM    name=${NAME}    kernel=/nonexistent/vmlinuz

Missing Initrd
    [Documentation]    So does an initrd path.
    ${kernel}    Get Guest Image Kernel
    Run Keyword And Expect Error    initrd '/nonexistent/initrd.img' does not exist
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=/nonexistent/initrd.img

Missing Disk Image
    [Documentation]    And a disk image path.
    Run Keyword And Expect Error    disk image '/nonexistent/disk.qcow2' does not exist
    ...    Launch NVMe VM    name=${NAME}    disk_image=/nonexistent/disk.qcow2    ssh_key=${CURDIR}/vm_errors.robot

Namespace Bigger Than Its Backing File
    [Documentation]    A size that does not fit in an existing backing file is refused.
    VAR    ${backing}    ${OUTPUT DIR}${/}small.raw
    Create Binary File    ${backing}    ${EMPTY}
    Evaluate    os.truncate($backing, 1048576)
    Run Keyword And Expect Error    namespace 1 of nvme0: size 2 GiB does not fit in backing file '*' (1 MiB)
    ...    Launch NVMe VM    name=${NAME}    size=2G    backing=${backing}

Namespace Bigger Than The Free Disk Space
    [Documentation]    A new backing file larger than the free space of its folder is refused.
    Run Keyword And Expect Error    namespace size * bytes does not fit: only * bytes free in '*'
    ...    Launch NVMe VM    name=${NAME}    size=900T

Namespace Size That Is Not A Size
    [Documentation]    Sizes are bytes or numbers with K/M/G/T.
    Run Keyword And Expect Error    namespace size 'lots' is not a size (use bytes or e.g. 64M, 1G, 1GiB)
    ...    Launch NVMe VM    name=${NAME}    size=lots

QEMU Missing
    [Documentation]    A QEMU that is not installed is named with the way to install one.
    Set Environment Variable    NVMECHAOS_QEMU    qemu-system-nonexistent
    TRY
        Run Keyword And Expect Error    QEMU is not installed: no 'qemu-system-nonexistent' on PATH*
        ...    Launch NVMe VM    name=${NAME}
    FINALLY
        Remove Environment Variable    NVMECHAOS_QEMU
    END

QEMU Too Old
    [Documentation]    QEMU 7.2 (Debian 12's own) loses NVMe I/O under TCG: refused with the fix.
    VAR    ${fake}    ${OUTPUT DIR}${/}qemu-7.2
    Create File    ${fake}    \#!/bin/sh\necho "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)"\n
    Evaluate    os.chmod($fake, 0o755)
    Set Environment Variable    NVMECHAOS_QEMU    ${fake}
    TRY
        Run Keyword And Expect Error    QEMU 7.2.15 at * is too old: need >= 8.0*bookworm-backports*
        ...    Launch NVMe VM    name=${NAME}
    FINALLY
        Remove Environment Variable    NVMECHAOS_QEMU
    END

Guest Never Ready Includes The Console Tail
    [Documentation]    A guest whose init never starts sshd (cat waits on the console) fails after the
    ...    timeout with the console's last lines.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image
    ${message}    Run Keyword And Expect Error    *
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img    timeout=12
    ...    append=console=ttyS0 loglevel=7 panic=-1 rdinit=/bin/cat
    Should Match    ${message}    guest of VM '${NAME}' not ready within 12 s (*); console: *
    Should Not Contain    ${message}    console: (empty)

Bogus Initrd Ends QEMU And Says So
    [Documentation]    An initrd that is not one makes the kernel panic; QEMU ends and the error shows the panic.
    ${kernel}    Get Guest Image Kernel
    VAR    ${bogus}    ${OUTPUT DIR}${/}bogus-initrd.img
    Create File    ${bogus}    this is not an initramfs
    ${message}    Run Keyword And Expect Error    *
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${bogus}    append=${FAST_APPEND}    timeout=60
    Should Match    ${message}    QEMU of VM '${NAME}' ended (exit code 0) before the guest was ready; *console: *
    Should Contain    ${message}    Kernel panic

Fio Missing In A User Supplied Guest
    [Documentation]    A guest without fio is refused by the readiness check, naming the fix.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image    with_fio=False
    Run Keyword And Expect Error    fio is missing in the guest of VM '${NAME}'*
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img

SSH Login Refused
    [Documentation]    A user the guest does not know is refused at once, not after the timeout.
    Run Keyword And Expect Error    SSH login as nobody to 127.0.0.1:* refused: *
    ...    Launch NVMe VM    name=${NAME}    ssh_user=nobody

Wrong Pinned Host Key
    [Documentation]    A guest answering with another host key than the pinned one is refused.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image
    Run Keyword And Expect Error    guest SSH host key * is not the pinned key*
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img
    ...    host_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmlUeA6MFqRgBGD7a6RHhJvVZ7IBX9ZY4ZUDp5rKzPe

Missing Backing File Is Refused Before Anything Is Created
    [Documentation]    A backing file that does not exist fails in one line naming it; no folder, file
    ...    or QEMU is made for the refused launch (it used to create a 1 GiB file and boot on it).
    Launch Should Fail Before Anything    ${MISSING_BACKING}    backing=/nonexistent-${NAME}/backing.raw
    Should Not Exist    /nonexistent-${NAME}

A Backing File Is Created Only When Asked For
    [Documentation]    create_backing=True creates a missing backing file, in a folder that exists;
    ...    the file outlives the VM, and a launch that fails removes it again.
    VAR    ${backing}    ${OUTPUT DIR}${/}kept-${NAME}.raw
    Launch Should Fail Before Anything    ${NO_FOLDER}
    ...    backing=${OUTPUT DIR}${/}no${/}disk.raw    size=64M    create_backing=True
    Run Keyword And Expect Error    QEMU of VM '${NAME}' ended at start-up: *
    ...    Launch NVMe VM    name=${NAME}    backing=${backing}    size=64M    create_backing=True
    ...    extra_args=${{["-no-such-option"]}}
    File Should Not Exist    ${backing}
    ${vm}    Launch NVMe VM    name=${NAME}    backing=${backing}    size=64M    create_backing=True    wait=False
    Should Be Equal    ${vm.controllers[0].namespaces[0].backing}    ${{pathlib.Path($backing)}}
    Stop All VMs
    ${size}    Get File Size    ${backing}
    Should Be Equal As Integers    ${size}    67108864
    [Teardown]    Remove File    ${backing}

Memory Must Be A Positive Amount
    [Documentation]    memory=0 used to become 1024 MiB silently.
    [Template]    Launch Should Fail Before Anything
    ${BAD_MEMORY}    memory=0
    VM memory '-512' is not positive (give MiB*    memory=-512
    VM memory 'lots' is not an amount of memory (give MiB*    memory=lots
    VM memory 64 MiB is too small (at least 128 MiB)    memory=64
    VM CPUs 0 must be between 1 and 64    cpus=0

Bad Library Import Arguments Fail The Import In One Line
    [Documentation]    Robot puts the import failure after its own prefix; no traceback follows
    ...    (one did, until the import's error became a DataError).
    Run Keyword And Expect Error    REGEXP:.*failed: VM memory '0' is not positive \\(give MiB[^\\n]*\\)\\s*
    ...    Import Library    VmLibrary    memory=0    AS    ZeroMemoryVm
    Run Keyword And Expect Error    REGEXP:.*failed: boot_timeout '0' is not positive\\s*
    ...    Import Library    VmLibrary    boot_timeout=0    AS    ZeroBootVm

Bad Launch Options Are Refused Before Anything
    [Template]    Launch Should Fail Before Anything
    ${NOT_A_TIME}    timeout=soon
    wait 'maybe' is not true or false    wait=maybe
    create_backing\=True needs backing\= (the path of the file to create)    create_backing=True
    ${NOT_AN_ACCEL}    accel=fast
    host key 'garbage' is not an SSH public key line (TYPE BASE64*    host_key=garbage

Options That Do Not Fit Together Are Refused Before Anything
    [Template]    Launch Should Fail Before Anything
    layout\= describes every namespace: put size\= inside the layout, not beside it    layout=[["1G"]]    size=2G
    namespace 1 of nvme0: an NBD namespace takes its size from the export; give no size
    ...    nbd=nbd://127.0.0.1:1    size=1G
    backing\= and nbd\= describe one namespace: use layout\= for several    backing=${CURDIR}    namespaces=2

Bad NVMECHAOS_ACCEL Is Refused Before Anything
    Set Environment Variable    NVMECHAOS_ACCEL    fast
    TRY
        Launch Should Fail Before Anything    NVMECHAOS_ACCEL\='fast' is not auto, kvm or tcg
    FINALLY
        Remove Environment Variable    NVMECHAOS_ACCEL
    END

Memory Takes A Size And The Log Says Why KVM Was Not Used
    [Documentation]    1.5G is 1536 MiB (QEMU -m); with NVMECHAOS_ACCEL=tcg the reason is that variable.
    Set Environment Variable    NVMECHAOS_ACCEL    tcg
    TRY
        ${vm}    Launch NVMe VM    name=${NAME}    memory=1.5G    wait=False
    FINALLY
        Remove Environment Variable    NVMECHAOS_ACCEL
    END
    Should Be Equal As Integers    ${vm.spec.memory_mib}    1536
    ${argv}    Get File    ${vm.output_dir}${/}qemu-argv.txt
    Should Contain    ${argv}    ${SPACE}-m 1536${SPACE}
    Should Be Equal    ${vm.accelerator}:${vm.accelerator_reason}    tcg:NVMECHAOS_ACCEL=tcg
    [Teardown]    Stop All VMs

Bad Times And Counts On A Running VM
    ${vm}    Launch NVMe VM    name=${NAME}    wait=False
    Run Keyword And Expect Error    ${NOT_A_TIME}
    ...    Wait Until VM Is Ready    ${vm}    timeout=soon
    Run Keyword And Expect Error    timeout '-1' is not positive
    ...    Wait For QMP Event    ${vm}    SHUTDOWN    timeout=-1
    Run Keyword And Expect Error    timeout '0' is not positive
    ...    Hot Unplug NVMe Device    ${vm}    nvme0    timeout=0
    Run Keyword And Expect Error    lines '0' is not 1 or more
    ...    Get VM Console Tail    ${vm}    lines=0
    Run Keyword And Expect Error    samples '0' is not 1 or more
    ...    Measure Guest Clock    ${vm}    samples=0
    [Teardown]    Stop All VMs

A String Is Not A VM Handle For Life Cycle Keywords
    [Documentation]    Every keyword taking a VM says so in one line instead of an AttributeError.
    [Template]    Should Not Take A String For A VM
    Wait Until VM Is Ready
    Shut Down VM
    Power Cut VM
    Restart VM
    VM Should Be Running
    VM Should Not Be Running
    Get VM Guest Devices
    Get VM Console Tail
    SSH Host Key Should Match VM

A String Is Not A VM Handle For QMP And Fault Keywords
    [Template]    Should Not Take A String For A VM
    Execute QMP Command    query-status
    Wait For QMP Event    SHUTDOWN
    Get QMP Events
    Hot Unplug NVMe Device    nvme0
    Hot Plug NVMe Device    nvme0
    Set IO Throttle    nvme0    iops=100
    Clear IO Throttle    nvme0
    Get IO Throttle    nvme0
    Measure Guest Clock
    Get VM Fault Timeline

No QEMU Left Behind
    [Documentation]    None of the failures above left a QEMU running.
    ${result}    Run Process    pgrep    -f    nvmechaos-${NAME}
    Should Be Equal As Integers    ${result.rc}    1    QEMU still running: ${result.stdout}


*** Keywords ***
Launch Should Fail Before Anything
    [Documentation]    Launch NVMe VM with ${arguments} fails with ${message}, and creates no run
    ...    folder (in a fresh NVMECHAOS_RUN_DIR) and no output folder for the refused VM.
    [Arguments]    ${message}    &{arguments}
    VAR    ${run_dir}    ${OUTPUT DIR}${/}runs-${NAME}-${{__import__("uuid").uuid4().hex[:6]}}
    Create Directory    ${run_dir}
    Set Environment Variable    NVMECHAOS_RUN_DIR    ${run_dir}
    TRY
        Run Keyword And Expect Error    ${message}    Launch NVMe VM    name=${NAME}    &{arguments}
    FINALLY
        Remove Environment Variable    NVMECHAOS_RUN_DIR
    END
    Directory Should Be Empty    ${run_dir}
    ${suite}    Evaluate    nvmechaos_robot.safe_name($SUITE_NAME)
    ${test}    Evaluate    nvmechaos_robot.safe_name($TEST_NAME)
    Directory Should Not Exist    ${OUTPUT DIR}${/}vm${/}${suite}${/}${test}

Should Not Take A String For A VM
    [Documentation]    ${keyword} given the string 'vm-1' instead of a VM handle fails in one line.
    [Arguments]    ${keyword}    @{arguments}    &{named}
    Run Keyword And Expect Error    'vm-1' is not a VM (use the handle `Launch NVMe VM` returned)
    ...    ${keyword}    vm-1    @{arguments}    &{named}
